"""``docqa ui``: start the Streamlit app on this machine.

The command checks the settings (so a bad value is one clean line, not a browser full of
errors), passes them to the app through ``DOCQA_*`` environment variables, and replaces itself
with ``streamlit run``. The app listens on 127.0.0.1 unless ``--host`` says otherwise; any other
address gets a loud warning, as anyone who reaches it can read, upload and delete documents, and
``--token`` (or ``$DOCQA_UI_TOKEN``) makes the app ask for an access token first.
"""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from pathlib import Path

import click

from rag.cli.common import index_option, models_dir_option, settings_from

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"


def streamlit_command(app: Path, host: str, port: int, max_upload_mb: float) -> list[str]:
    """The ``streamlit run`` command line for the app.

    >>> streamlit_command(Path("app.py"), "127.0.0.1", 8501, 64.0)[1:4]
    ['-m', 'streamlit', 'run']
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(max(1, math.ceil(max_upload_mb))),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",  # no "Deploy" button: this app runs on the user's machine
    ]


def app_environment(base: dict[str, str], **values: object) -> dict[str, str]:
    """``base`` with ``DOCQA_<NAME>`` set for each value that is not None.

    >>> app_environment({}, index=Path("/tmp/ix"), generator=None)
    {'DOCQA_INDEX': '/tmp/ix'}
    """
    env = dict(base)
    for name, value in values.items():
        if value is not None:
            env[f"DOCQA_{name.upper()}"] = str(value)
    return env


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposure_warning(host: str, has_token: bool) -> str | None:
    """The warning for listening on ``host``; None on a loopback address."""
    if is_loopback(host):
        return None
    who = "anyone who can reach this port"
    warning = (
        f"WARNING: docqa ui listens on {host}: {who} can read every indexed document, upload, "
        "re-index and delete."
    )
    if has_token:
        return warning + " They need the access token first; it travels in clear text without HTTPS."
    return (
        warning + " No access token is set: pass --token (or set DOCQA_UI_TOKEN) to a long random "
        "secret, or put the app behind a reverse proxy that authenticates."
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@index_option
@models_dir_option
@click.option("--generator", default=None, help="Generator: a bundled name, a folder, or 'openai'.")
@click.option("--embedder", default=None, help="Embedder the index was built with (a bundled name).")
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), default=None, help="A docqa.toml file."
)
@click.option(
    "--token",
    envvar="DOCQA_UI_TOKEN",
    default=None,
    help="Ask browsers for this access token before showing anything (better: $DOCQA_UI_TOKEN).",
)
def ui(
    host: str,
    port: int,
    index_dir: Path | None,
    models_dir: Path | None,
    generator: str | None,
    embedder: str | None,
    config: Path | None,
    token: str | None,
) -> None:
    """Open the chat app in a browser: ask the manuals, see the pages, manage documents.

    \b
    Example:
      docqa ui                        # http://127.0.0.1:8501
      docqa ui --index ./index --port 8600
      DOCQA_UI_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe())') docqa ui --host 0.0.0.0
    """
    settings = settings_from(
        config, index_dir=index_dir, models_dir=models_dir, generator=generator, embedder=embedder
    )
    env = app_environment(
        dict(os.environ),
        config=config.resolve() if config else None,
        index=settings.index_dir.resolve(),
        models_dir=settings.models_dir.resolve(),
        generator=generator,
        embedder=embedder,
        ui_token=token or None,
    )
    command = streamlit_command(APP, host, port, settings.max_file_mb)
    warning = exposure_warning(host, bool(token))
    if warning:
        click.secho(warning, err=True, fg="red", bold=True)
    click.echo(f"docqa ui: http://{host}:{port}  (index {settings.index_dir})", err=True)
    sys.stdout.flush()
    os.execve(sys.executable, command, env)
