"""Chunking properties: exact offsets, token limit, coverage, stable ids, boundaries, overlap.

Each property is checked with the fast hash tokenizer and, under ``slow``, with the real MiniLM
and EmbeddingGemma tokenizers (re-tokenizing every chunk's text on its own).
"""

from __future__ import annotations

import itertools
import random

import pytest

from ingest.chunk import chunk_limit, chunk_sections
from ingest.records import Section
from tests.conftest import SHARED
from tests.fakes import HashEmbedder

SHA = "ab" * 32
_REAL_PAGE = SHARED / "eval" / "faq-dev" / "corpus" / "zsh-faq-en"


def _real_page() -> str:
    files = sorted(_REAL_PAGE.glob("*Redirection*"))
    if not files:
        pytest.skip(f"no dev corpus at {_REAL_PAGE}")
    return files[0].read_text(encoding="utf-8")


def _words(n: int, seed: int = 0) -> str:
    """Sentences and paragraphs of random words, deterministic."""
    rng = random.Random(seed)
    vocab = ["manual", "voltage", "sensor", "configuración", "señal", "measure", "the", "a", "of", "cable"]
    out = []
    for i in range(n):
        out.append(rng.choice(vocab))
        if i % 9 == 8:
            out[-1] += "."
        if i % 60 == 59:
            out[-1] += "\n\n"
    return " ".join(out)


TEXTS = {
    "empty": "",
    "whitespace": "  \n\t \n",
    "one-char": "x",
    "emoji": "Pulse 🔌 el botón 😀👍🏽 y espere 🎉. Then press OK 🙂.",
    "spanish": "La configuración de la señal: ¿cómo se mide la tensión? Conecte el cable rojo al terminal A1. "
    * 30,
    "no-spaces": "ab." * 700,
    "paragraphs": _words(3000),
}


def check(text: str, tokenizer, size: int, overlap: int) -> list:
    """Every property of chunking one section; returns the chunks."""
    chunks = chunk_sections(
        [Section(text, "doc.txt", page=3, lang="es")], tokenizer, size, overlap, file_sha256=SHA
    )
    again = chunk_sections(
        [Section(text, "doc.txt", page=3, lang="es")], tokenizer, size, overlap, file_sha256=SHA
    )
    assert [c.id for c in chunks] == [c.id for c in again], "ids must be stable across runs"
    assert len({c.id for c in chunks}) == len(chunks)
    covered = bytearray(len(text))
    for n, c in enumerate(chunks):
        assert text[c.start : c.end] == c.text
        assert c.text.strip() == c.text and c.text, "chunks are stripped and never whitespace-only"
        assert c.tokens == len(tokenizer.token_spans(c.text)) <= size
        assert (c.position, c.section, c.page, c.lang, c.source) == (n, 0, 3, "es", "doc.txt")
        covered[c.start : c.end] = b"\1" * (c.end - c.start)
    missed = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not missed, f"characters outside every chunk at {missed[:5]}"
    return chunks


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_properties_with_hash_tokenizer(name: str) -> None:
    check(TEXTS[name], HashEmbedder(), 24, 4)


def test_properties_on_a_real_page() -> None:
    chunks = check(_real_page(), HashEmbedder(), 120, 16)
    assert len(chunks) > 10


def test_empty_texts_give_no_chunks() -> None:
    for text in ("", " ", "\n\n\t"):
        assert chunk_sections([Section(text, "a")], HashEmbedder(), 8, 2, file_sha256=SHA) == []


def test_positions_run_across_sections() -> None:
    sections = [Section(_words(50, s), "m.md", heading=f"H{s}") for s in range(3)]
    chunks = chunk_sections(sections, HashEmbedder(), 16, 2, file_sha256=SHA)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert sorted({c.section for c in chunks}) == [0, 1, 2]
    assert all(c.heading == f"H{c.section}" for c in chunks)
    for c in chunks:
        assert sections[c.section].text[c.start : c.end] == c.text


def test_ids_depend_on_file_content_hash() -> None:
    section = [Section("Some text here.", "a")]
    one = chunk_sections(section, HashEmbedder(), 8, 0, file_sha256="0" * 64)
    two = chunk_sections(section, HashEmbedder(), 8, 0, file_sha256="1" * 64)
    assert one[0].id != two[0].id


def test_cuts_prefer_sentence_ends() -> None:
    text = " ".join(f"Sentence number {i} has six words." for i in range(40))
    chunks = chunk_sections([Section(text, "a")], HashEmbedder(), 20, 0, file_sha256=SHA)
    assert len(chunks) > 5
    assert all(c.text.endswith(".") for c in chunks), [c.text[-20:] for c in chunks]
    assert all(c.tokens >= 10 for c in chunks[:-1]), "cuts are in the second half of the budget"


def test_cuts_prefer_paragraph_breaks() -> None:
    paragraph = "One two three. Four five six seven. Eight nine."  # 9 tokens
    text = "\n\n".join([paragraph] * 10)
    chunks = chunk_sections([Section(text, "a")], HashEmbedder(), 24, 0, file_sha256=SHA)
    assert all(c.text.endswith("nine.") and c.text.startswith("One") for c in chunks)
    assert {c.tokens for c in chunks[:-1]} == {18}


def test_overlap_is_bounded_and_starts_on_a_word() -> None:
    text = _words(400, seed=3)
    tokenizer = HashEmbedder()
    chunks = chunk_sections([Section(text, "a")], tokenizer, 30, 6, file_sha256=SHA)
    overlaps = 0
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.start > prev.start and nxt.end > prev.end
        if nxt.start < prev.end:
            overlaps += 1
            assert len(tokenizer.token_spans(text[nxt.start : prev.end])) <= 6
            assert text[nxt.start - 1].isspace()
    assert overlaps >= len(chunks) // 2


def test_bad_size_or_overlap_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_sections([Section("x", "a")], HashEmbedder(), 8, 8, file_sha256=SHA)
    with pytest.raises(ValueError):
        chunk_sections([Section("x", "a")], HashEmbedder(), 0, 0, file_sha256=SHA)


def test_chunk_limit_never_exceeds_the_model() -> None:
    assert chunk_limit(254, 256, 32) == (254, 32)
    assert chunk_limit(2038, 256, 32) == (256, 32)
    assert chunk_limit(40, 256, 32) == (40, 19)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TEXTS))
def test_properties_with_minilm(minilm, name: str) -> None:
    size, overlap = chunk_limit(minilm.max_tokens, 256, 32)
    check(TEXTS[name], minilm, size, overlap)


@pytest.mark.slow
def test_real_page_with_minilm_fills_chunks(minilm) -> None:
    size, overlap = chunk_limit(minilm.max_tokens, 256, 32)
    chunks = check(_real_page(), minilm, size, overlap)
    assert size == 254
    assert sum(c.tokens for c in chunks[:-1]) / (len(chunks) - 1) > 0.75 * size


@pytest.mark.slow
@pytest.mark.parametrize("name", ["emoji", "spanish", "paragraphs"])
def test_properties_with_gemma_tokenizer(gemma, name: str) -> None:
    size, overlap = chunk_limit(gemma.max_tokens, 256, 32)
    check(TEXTS[name], gemma, size, overlap)
