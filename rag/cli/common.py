"""Options shared by several commands, and the one place settings are built for the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ingest.settings import Settings, load_settings


def models_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--models-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Model cache folder (default: $DOCQA_MODELS_DIR or the user cache dir).",
    )(func)


def index_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--index",
        "index_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Index folder (default: $DOCQA_INDEX or the user data dir).",
    )(func)


def settings_from(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, the ``config`` file (or $DOCQA_CONFIG), the environment, then flags."""
    return load_settings(config_file=config, **overrides)
