"""The transformers generator's prefix cache and continuation probability, with the real Qwen 0.5B."""

from __future__ import annotations

import math

import pytest

from ingest.records import Message, Passage
from rag.prompt import build_prompt
from rag.refusal import refusal

PASSAGE = Passage(
    "c1",
    "eyes17.pdf",
    "PV1 can be set to any value from -5 V to +5 V with 12-bit resolution.",
    page=8,
    heading="",
    lang="en",
    score=1.0,
    rank=1,
)


def _messages(question: str) -> list[Message]:
    return build_prompt(question, [PASSAGE], language="en", budget_tokens=300)


def _plain_probability(qwen, messages, text: str) -> float:
    """The same probability from one full forward pass, no cache involved."""
    import torch

    prompt = qwen.prompt_ids(messages)
    wanted = qwen._tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = torch.cat([prompt, torch.tensor([wanted])], dim=1)
    with torch.inference_mode():
        logp = torch.log_softmax(qwen._model(input_ids=ids).logits[0].float(), dim=-1)
    n = prompt.shape[1] - 1
    return math.exp(sum(float(logp[n + i, t]) for i, t in enumerate(wanted)))


@pytest.mark.slow
def test_continuation_probability_matches_a_plain_forward_pass(qwen):
    messages = _messages("What is the price of the kit?")
    cached = qwen.continuation_probability(messages, refusal("en"))
    assert 0.0 < cached <= 1.0
    assert cached == pytest.approx(_plain_probability(qwen, messages, refusal("en")), rel=1e-3, abs=1e-6)
    assert qwen.continuation_probability(messages, "") == 1.0


@pytest.mark.slow
def test_streaming_after_the_probe_gives_the_same_answer(qwen):
    messages = _messages("To what voltage range can PV1 be set?")
    qwen._prefixes.clear()
    fresh = "".join(qwen.stream(messages, max_new_tokens=12))
    qwen._prefixes.clear()
    probability = qwen.continuation_probability(messages, refusal("en"))
    assert tuple(qwen.prompt_ids(messages)[0, :-1].tolist()) in qwen._prefixes  # the probe's cache kept
    after = "".join(qwen.stream(messages, max_new_tokens=12))
    assert after == fresh and "5" in after
    assert probability < 0.03  # it answers this one


@pytest.mark.slow
def test_avoid_keeps_the_answer_from_starting_with_the_refusal_sentence(qwen):
    """Greedy decoding answers this question with the refusal sentence; with ``avoid`` (what the
    engine passes once its fitted decision has said "answer") it writes something else. Both
    halves are checked, so the test shows the rule acts."""
    passage = Passage(
        "c2",
        "faq.txt",
        "WeeChat funciona en Linux, BSD, GNU/Hurd, Mac OS X, QNX y Windows (Cygwin y WSL).",
        page=None,
        heading="",
        lang="es",
        score=1.0,
        rank=1,
    )
    messages = build_prompt(
        "¿Cuánto cuesta una camiseta oficial de WeeChat?",
        [passage],
        language="es",
        budget_tokens=300,
        count_tokens=qwen.count_tokens,
    )
    free = "".join(qwen.stream(messages, 24))
    kept = "".join(qwen.stream(messages, 24, avoid=refusal("es")))
    assert free.startswith(refusal("es")[:12]), free
    assert not kept.startswith(refusal("es")[:12]), kept


@pytest.mark.slow
def test_warm_up_leaves_each_languages_prompt_prefix_cached(qwen):
    from ingest.settings import Settings
    from rag.engine import Engine

    qwen._prefixes.clear()
    Engine(Settings(), None, None, qwen).warm_up(search=False)  # the prompt needs no index
    for lang in ("en", "es"):
        messages = build_prompt("¿Qué rango tiene PV1?", [PASSAGE], language=lang, budget_tokens=300)
        fixed = tuple(qwen.prompt_ids(messages[:-1], generation_prompt=False)[0].tolist())
        assert fixed in qwen._prefixes  # a real question's rules and examples: already prefilled
