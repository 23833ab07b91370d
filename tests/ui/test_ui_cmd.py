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
