"""The llama.cpp runtime (``generator_runtime = "llama.cpp"``) with the real Qwen 0.5B GGUF.

Fast tests check the setting and the errors that say how to get llama.cpp or the GGUF; slow ones
load the real model: a cited answer through the engine with the network cut, the refusal probe
against a plain computation and against torch, streaming, and the prompt-prefix reuse.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ingest.errors import ConfigError, GeneratorUnavailable
from ingest.records import Message, Passage
from ingest.registry import STAMP
from ingest.settings import Settings
from rag.cli import cli
from rag.generate import load_generator, resolve_runtime, runtime_for
from rag.prompt import build_prompt
from rag.refusal import refusal
from tests.offline_audit import run_offline

PV1 = Passage(
    "c1",
    "eyes17.pdf",
    "PV1 can be set to any value from -5 V to +5 V with 12-bit resolution.",
    page=8,
    heading="",
    lang="en",
    score=1.0,
    rank=1,
)
WG = Passage(
    "c2",
    "eyes17.pdf",
    "The sine/triangular wave generator WG works from 5 Hz to 5 kHz; SQ1 gives square waves.",
    page=9,
    heading="",
    lang="en",
    score=0.9,
    rank=2,
)


def _messages(question: str, passages=(PV1,), language: str = "en") -> list[Message]:
    return build_prompt(question, list(passages), language=language, budget_tokens=300)


def test_the_runtime_setting_is_checked() -> None:
    assert Settings().generator_runtime == "auto"
    assert Settings(generator_runtime="llama.cpp").generator_runtime == "llama.cpp"
    with pytest.raises(ConfigError, match=r"generator_runtime.*auto, torch, llama\.cpp"):
        Settings(generator_runtime="onnx")


def test_a_folder_without_gguf_says_how_to_get_it(tmp_path: Path) -> None:
    settings = Settings(generator=str(tmp_path), generator_runtime="llama.cpp")
    with pytest.raises(GeneratorUnavailable, match=r"no model\.gguf.*docqa models fetch.*torch"):
        load_generator(settings)


def test_a_missing_llama_cpp_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "model.gguf").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    with pytest.raises(GeneratorUnavailable, match=r"llama-cpp-python.*make setup.*torch"):
        load_generator(Settings(generator=str(tmp_path), generator_runtime="llama.cpp"))


def test_models_list_shows_the_runtime(tmp_path: Path) -> None:
    env = {"DOCQA_GENERATOR_RUNTIME": "llama.cpp"}
    result = CliRunner().invoke(cli, ["models", "list", "--models-dir", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    assert "qwen2.5-coder-0.5b-instruct on llama.cpp" in result.output
    rows = json.loads(
        CliRunner().invoke(cli, ["models", "list", "--json", "--models-dir", str(tmp_path)], env=env).output
    )
    assert {r.get("generator_runtime") for r in rows if r["role"] == "generator"} == {"llama.cpp"}


def test_auto_takes_llama_cpp_only_where_it_can_run(tmp_path: Path, monkeypatch) -> None:
    assert resolve_runtime("auto", tmp_path) == "torch"  # no model.gguf
    (tmp_path / "model.gguf").write_bytes(b"")
    assert resolve_runtime("auto", tmp_path) == "llama.cpp"
    assert resolve_runtime("torch", tmp_path) == "torch"
    # "models list" says what auto chose for each generator folder (none fetched here: torch).
    env = {"DOCQA_GENERATOR_RUNTIME": "auto"}
    result = CliRunner().invoke(cli, ["models", "list", "--models-dir", str(tmp_path / "m")], env=env)
    assert "qwen2.5-coder-0.5b-instruct on torch" in result.output and "auto" in result.output
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "llama_cpp" else real(name))
    assert resolve_runtime("auto", tmp_path) == "torch"  # llama-cpp-python missing


def test_auto_runs_each_bundled_generator_on_its_own_runtime(tmp_path: Path, monkeypatch) -> None:
    """The 0.5B on torch (its decision's probe, the first token sooner), the 1.5B on llama.cpp
    (2.7 s to the first token against 5-15 s on torch); a local folder by its GGUF."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: object() if name == "llama_cpp" else real(name)
    )
    for name in ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct", "my-own-model"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.gguf").write_bytes(b"")
        (tmp_path / name / STAMP).write_text("")  # as `docqa models fetch` leaves it
    assert resolve_runtime("auto", tmp_path / "qwen2.5-coder-0.5b-instruct") == "torch"
    assert resolve_runtime("auto", tmp_path / "qwen2.5-coder-1.5b-instruct") == "llama.cpp"
    assert resolve_runtime("auto", tmp_path / "my-own-model") == "llama.cpp"
    assert resolve_runtime("torch", tmp_path / "qwen2.5-coder-1.5b-instruct") == "torch"  # asked for: kept
    assert resolve_runtime("llama.cpp", tmp_path / "qwen2.5-coder-0.5b-instruct") == "llama.cpp"
    settings = Settings(generator="qwen2.5-coder-1.5b-instruct", models_dir=tmp_path)
    assert (
        runtime_for(settings) == "llama.cpp" and runtime_for(settings.replace(generator="openai")) == "openai"
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "llama_cpp" else real(name))
    assert resolve_runtime("auto", tmp_path / "qwen2.5-coder-1.5b-instruct") == "torch"  # not installed


# ---------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def llama(qwen_folder):
    from rag.llamacpp_generator import LlamaCppGenerator

    return LlamaCppGenerator(
        str(qwen_folder), name="qwen2.5-coder-0.5b-instruct", threads=os.cpu_count() or 1
    )


def _forget(llama) -> None:
    """Empty the KV cache and its snapshots: the next call prefills its whole prompt."""
    llama._llm.n_tokens = 0
    llama._logits_n = -1
    llama._snapshots.items.clear()


def _plain_probability(llama, messages, text: str) -> float:
    """The probability from the whole prompt, then ``text`` one token at a time: no reuse, no batch."""
    llm = llama._llm
    _forget(llama)
    wanted = llama._tokenizer(text, add_special_tokens=False)["input_ids"]
    llm.eval(llama.prompt_ids(messages))
    total = 0.0
    for token in wanted:
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm._n_vocab,)).astype(np.float64)
        total += logits[token] - (logits.max() + math.log(np.exp(logits - logits.max()).sum()))
        llm.eval([token])
    _forget(llama)
    return math.exp(total)


@pytest.mark.slow
def test_prompts_are_token_identical_to_torch(llama, qwen):
    messages = _messages("¿Qué rango tiene PV1? 🎛", language="es")
    assert llama.prompt_ids(messages) == qwen.prompt_ids(messages)[0].tolist()
    assert llama.count_tokens("Señal de 5 kHz") == qwen.count_tokens("Señal de 5 kHz")


@pytest.mark.slow
@pytest.mark.parametrize(
    "question", ["To what voltage range can PV1 be set?", "What is the price of the kit?"]
)
def test_continuation_probability_matches_a_plain_computation_and_torch(llama, qwen, question):
    messages = _messages(question)
    probe = llama.continuation_probability(messages, refusal("en"))
    assert 0.0 < probe <= 1.0
    assert probe == pytest.approx(_plain_probability(llama, messages, refusal("en")), rel=0.05, abs=1e-5)
    # Same weights, 4-bit kernels with 8-bit activations vs fp32: close in log space.
    torch_probe = qwen.continuation_probability(messages, refusal("en"))
    assert abs(math.log(probe) - math.log(torch_probe)) < 0.5, (probe, torch_probe)
    assert llama.continuation_probability(messages, "") == 1.0


@pytest.mark.slow
def test_streaming_after_the_probe_costs_no_prefill_and_gives_the_same_answer(llama, monkeypatch):
    messages = _messages("To what voltage range can PV1 be set?")
    _forget(llama)
    fresh = "".join(llama.stream(messages, max_new_tokens=16))
    _forget(llama)
    llama.continuation_probability(messages, refusal("en"))
    fed: list[int] = []
    real_eval = llama._llm.eval
    monkeypatch.setattr(llama._llm, "eval", lambda tokens: (fed.append(len(tokens)), real_eval(tokens))[1])
    after = "".join(llama.stream(messages, max_new_tokens=16))
    assert after == fresh and "5" in after
    assert fed and max(fed) == 1  # only the answer's own tokens, one at a time


@pytest.mark.slow
def test_streamed_pieces_are_whole_characters_and_make_the_decoded_answer(llama, monkeypatch):
    messages = [Message("user", "Escribe tres emojis de música y la palabra «canción», nada más.")]
    produced: list[int] = []
    real = llama._llm.detokenize
    monkeypatch.setattr(llama._llm, "detokenize", lambda tokens: (produced.extend(tokens), real(tokens))[1])
    pieces = list(llama.stream(messages, max_new_tokens=24))
    text = "".join(pieces)
    assert text == llama._tokenizer.decode(produced, skip_special_tokens=True)
    assert "\ufffd" not in text and any(ord(c) > 0xFFFF for c in text), text  # emoji: several tokens each


@pytest.mark.slow
def test_a_reused_prompt_prefix_gives_the_same_answer(llama, monkeypatch):
    first = _messages("To what voltage range can PV1 be set?", (PV1, WG))
    second = _messages("What frequency range does WG cover?", (WG, PV1))
    _forget(llama)
    alone = "".join(llama.stream(second, max_new_tokens=24))
    "".join(llama.stream(first, max_new_tokens=24))  # leaves rules + examples in the cache
    fed: list[int] = []
    real_eval = llama._llm.eval
    monkeypatch.setattr(llama._llm, "eval", lambda tokens: (fed.append(len(tokens)), real_eval(tokens))[1])
    reused = "".join(llama.stream(second, max_new_tokens=24))
    assert reused == alone and "5" in reused
    assert fed[0] < len(llama.prompt_ids(second)) // 2  # only what is new was prefilled


_OFFLINE_SCRIPT = r"""

from pathlib import Path
from ingest.embedders import load_embedder
from ingest.pipeline import ingest_folder
from ingest.settings import load_settings
from rag.engine import open_engine

root = Path(sys.argv[1])
settings = load_settings().replace(
    index_dir=str(root / "index"), embedder="all-minilm-l6-v2", generator_runtime="llama.cpp",
    refusal_probability=0.5, max_new_tokens=48,
)
embedder = load_embedder(settings)
ingest_folder(root / "docs", settings.index_dir, embedder, settings)
with open_engine(settings, embedder=embedder) as engine:
    answer = engine.ask("To what voltage range can PV1 be set?")
    runtime = engine.generator.runtime
print(json.dumps({"text": answer.text, "refused": answer.refused, "runtime": runtime,
                  "cited": [c.source for c in answer.citations],
                  "probability": answer.refusal_score, "attempts": attempts}))
"""


@pytest.mark.slow
def test_a_cited_answer_through_the_engine_with_the_network_cut(tmp_path: Path, qwen_folder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "sources.md").write_text(
        "# Programmable voltage sources\n\nPV1 can be set to any value from -5 V to +5 V with "
        "12-bit resolution.\n",
        encoding="utf-8",
    )
    (docs / "safety.md").write_text(
        "# Safety\n\nNever connect the inputs to mains voltage. Keep the device dry.\n", encoding="utf-8"
    )
    result = run_offline(_OFFLINE_SCRIPT, str(tmp_path))
    assert result["attempts"] == []
    assert result["runtime"] == "llama.cpp"
    assert not result["refused"], result
    assert "5 V" in result["text"], result
    assert result["cited"] and result["cited"][0].endswith("sources.md"), result
    assert 0.0 < result["probability"] < 0.5


@pytest.mark.slow
def test_a_language_switch_restores_the_other_languages_prefix(llama, monkeypatch):
    english = _messages("To what voltage range can PV1 be set?", (PV1, WG))
    spanish = _messages("¿Qué rango de frecuencias cubre WG?", (WG, PV1), language="es")
    again = _messages("What frequency range does WG cover?", (WG, PV1))
    _forget(llama)
    alone = "".join(llama.stream(again, max_new_tokens=24))
    _forget(llama)
    "".join(llama.stream(english, max_new_tokens=8))  # English rules and examples: a snapshot
    "".join(llama.stream(spanish, max_new_tokens=8))  # the cache now holds the Spanish ones
    fed: list[int] = []
    real_eval = llama._llm.eval
    monkeypatch.setattr(llama._llm, "eval", lambda tokens: (fed.append(len(tokens)), real_eval(tokens))[1])
    restored = "".join(llama.stream(again, max_new_tokens=24))
    assert restored == alone and "5" in restored
    assert fed[0] < len(llama.prompt_ids(again)) // 2  # the English prefix came from its snapshot


@pytest.mark.slow
def test_the_same_question_probed_twice_gives_the_same_probability(llama):
    """A refused question asked again: two probes in a row, no decoding in between."""
    messages = _messages("What is the price of the kit?")
    first = llama.continuation_probability(messages, refusal("en"))
    assert llama.continuation_probability(messages, refusal("en")) == pytest.approx(first, rel=1e-4)
    assert "".join(llama.stream(messages, max_new_tokens=4))  # and decoding still works after
