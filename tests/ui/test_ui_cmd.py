"""``docqa ui``: checks the settings, then hands over to ``streamlit run`` on localhost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import ui_cmd


@pytest.fixture()
def exec_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], dict[str, str]]]:
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda path, args, env: calls.append((path, args, env)))
    for name in [n for n in os.environ if n.startswith("DOCQA_")]:
        monkeypatch.delenv(name)
    return calls


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_defaults_listen_on_localhost(exec_calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(ui_cmd.ui, ["--index", str(tmp_path / "ix")])
    assert result.exit_code == 0, result.output
    (_, args, env) = exec_calls[0]
    assert args[1:5] == ["-m", "streamlit", "run", str(ui_cmd.APP)]
    assert Path(args[4]).is_file()
    assert _option(args, "--server.address") == "127.0.0.1"
    assert _option(args, "--server.port") == "8501"
    assert _option(args, "--server.headless") == "true"
    assert _option(args, "--browser.gatherUsageStats") == "false"
    assert _option(args, "--server.maxUploadSize") == "64"
    assert env["DOCQA_INDEX"] == str((tmp_path / "ix").resolve())


def test_options_reach_the_app(exec_calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--host", "0.0.0.0", "--port", "8600", "--generator", "openai", "--models-dir", str(tmp_path)]
    result = CliRunner().invoke(ui_cmd.ui, args)
    assert result.exit_code == 0, result.output
    (_, argv, env) = exec_calls[0]
    assert _option(argv, "--server.address") == "0.0.0.0"
    assert _option(argv, "--server.port") == "8600"
    assert env["DOCQA_GENERATOR"] == "openai"
    assert env["DOCQA_MODELS_DIR"] == str(tmp_path.resolve())


def test_a_bad_setting_stops_before_streamlit(
    exec_calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCQA_TOP_K", "0")
    result = CliRunner().invoke(ui_cmd.ui, [])
    assert result.exit_code != 0
    assert "top_k" in str(result.exception)
    assert exec_calls == []


def test_a_non_loopback_host_gets_a_loud_warning_and_the_token_reaches_the_app(
    exec_calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    open_ = CliRunner().invoke(ui_cmd.ui, ["--host", "0.0.0.0"])
    assert open_.exit_code == 0, open_.output
    assert "WARNING: docqa ui listens on 0.0.0.0" in open_.output and "No access token is set" in open_.output
    assert "DOCQA_UI_TOKEN" not in exec_calls[0][2]

    guarded = CliRunner().invoke(ui_cmd.ui, ["--host", "192.168.1.5"], env={"DOCQA_UI_TOKEN": "s3cret-token"})
    assert "WARNING" in guarded.output and "need the access token" in guarded.output
    assert exec_calls[1][2]["DOCQA_UI_TOKEN"] == "s3cret-token"

    flag = CliRunner().invoke(ui_cmd.ui, ["--host", "0.0.0.0", "--token", "t0k3n"])
    assert flag.exit_code == 0 and exec_calls[2][2]["DOCQA_UI_TOKEN"] == "t0k3n"

    local = CliRunner().invoke(ui_cmd.ui, ["--host", "127.0.0.1"])
    assert "WARNING" not in local.output


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
                           ("0.0.0.0", False), ("::", False), ("10.0.0.2", False), ("docs.example", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert ui_cmd.is_loopback(host) is loopback
    assert (ui_cmd.exposure_warning(host, has_token=False) is None) is loopback


def test_token_check() -> None:
    from ui.access import token_matches

    assert token_matches("s3cret-token", "s3cret-token")
    assert not token_matches("s3cret-toke", "s3cret-token")
    assert not token_matches("", "s3cret-token")
    assert not token_matches("", "")  # no token set never means "anything matches"
    assert not token_matches("ñ", "n")
