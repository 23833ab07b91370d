"""``docqa ingest --config FILE``: the named TOML file is read, flags still beat it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.errors import ConfigError, NothingToIndex
from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from ingest.store import open_index
from rag.cli import cli
from tests.fakes import HashEmbedder


@pytest.fixture(autouse=True)
def _no_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DOCQA_CONFIG", "DOCQA_INDEX", "DOCQA_INDEX_DIR", "DOCQA_MAX_FILE_MB"):
        monkeypatch.delenv(name, raising=False)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_ingest_reads_the_index_folder_from_the_config(tmp_path: Path) -> None:
    docs, index = tmp_path / "docs", tmp_path / "named-index"
    docs.mkdir()
    (docs / "a.md").write_text("# Power\n\nThe battery lasts ten hours.")
    (docs / "b.txt").write_text("Clean the lens with a soft cloth.")
    ingest_folder(docs, index, HashEmbedder(), Settings())
    config = _config(tmp_path, f'index_dir = "{index}"\n')
    result = CliRunner().invoke(cli, ["ingest", "--remove", "a.md", "--config", str(config)])
    assert result.exit_code == 0, result.output
    with open_index(index) as opened:
        assert [f.path for f in opened.files()] == ["b.txt"]


def test_ingest_applies_the_configs_limits_and_flags_beat_it(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("A manual page. " * 100)
    config = _config(tmp_path, f'max_file_mb = 0.0001\nindex_dir = "{tmp_path / "from-config"}"\n')
    # checked before any model loads: the file is too large for the config's limit
    result = CliRunner().invoke(cli, ["ingest", str(docs), "--config", str(config)])
    assert isinstance(result.exception, NothingToIndex) and "too large" in str(result.exception)
    result = CliRunner().invoke(
        cli, ["ingest", "--remove", "x.txt", "--config", str(config), "--index", str(tmp_path / "flag")]
    )
    assert "no index at" in str(result.exception) and str(tmp_path / "flag") in str(result.exception)


def test_a_bad_config_is_a_config_error(tmp_path: Path) -> None:
    config = _config(tmp_path, "max_file_mb = [")
    result = CliRunner().invoke(cli, ["ingest", "--remove", "x", "--config", str(config)])
    assert isinstance(result.exception, ConfigError) and "mine.toml" in str(result.exception)
