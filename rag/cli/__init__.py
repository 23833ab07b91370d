"""The ``docqa`` command line. Each subcommand lives in its own module, loaded on demand.

Commands parse options, call one library function and print. A DocqaError becomes one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from ingest.errors import DocqaError

# name -> "module:attribute"; modules load only when their command runs, so `docqa --help`
# stays fast (no torch import).
COMMANDS = {
    "models": "rag.cli.models_cmd:models",
    "ingest": "rag.cli.ingest_cmd:ingest",
    "ask": "rag.cli.ask_cmd:ask",
    "eval": "rag.cli.eval_cmd:evaluate",
    "ui": "rag.cli.ui_cmd:ui",
    "serve": "rag.cli.serve_cmd:serve",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="docqa")
def cli() -> None:
    """docqa: cited answers from your own manuals, offline.

    \b
    Example:
      docqa models fetch
      docqa ingest corpus/
      docqa ask "How do I measure a voltage?"
    """


def main() -> None:
    """Entry point: run the CLI and turn docqa's errors into a clean message and exit code."""
    try:
        cli.main(standalone_mode=False)
    except DocqaError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
