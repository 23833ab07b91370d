"""Lead-ins: the start of a chunk's first line, for chunks that begin mid-line (real SQLite catalog)."""

from __future__ import annotations

from pathlib import Path

from ingest.catalog import FileUpdate
from ingest.chunk import chunk_sections
from ingest.records import Section
from ingest.store import open_index
from tests.fakes import HashEmbedder

EMB = HashEmbedder(dim=16, max_tokens=64)
LINE = (
    "Sets the range of output {n}. Output {n} goes to 5 volts. Output {n} is safe. "
    "Output {n} has a fuse. Output {n} is red. Output {n} is on the left."
)  # longer than a chunk: chunks end and start mid-line, on sentences
TEXT = "\n".join(LINE.format(n=n) for n in range(6))


def _index(tmp_path: Path, text: str = TEXT):
    chunks = chunk_sections([Section(text, "m.txt", page=1)], EMB, 24, 8, file_sha256="ab" * 32)
    vectors = EMB.embed_documents([c.text for c in chunks])
    index = open_index(tmp_path / "ix", embedder_name=EMB.name, create=True, dim=EMB.dim)
    index.apply([FileUpdate("/docs", "m.txt", "ab" * 32, 1, 1.0, tuple(chunks), vectors, pages=1)])
    index.commit()
    return index, chunks


def test_chunks_starting_mid_line_get_the_line_before_them(tmp_path):
    index, chunks = _index(tmp_path)
    leads = index.lead_ins([c.id for c in chunks], max_chars=400)
    mid_line = [c for c in chunks[1:] if TEXT[c.start - 1] != "\n"]
    assert mid_line and set(leads) == {c.id for c in mid_line}
    for c in mid_line:
        lead = leads[c.id]
        begin = c.start - len(lead)
        previous = chunks[c.position - 1]
        assert TEXT[begin : c.start] == lead and "\n" not in lead
        assert begin in (0, previous.start) or TEXT[begin - 1] == "\n"  # the line's or the chunk's start
    assert chunks[0].id not in leads
    index.close()


def test_long_lines_give_whole_sentences_within_the_limit(tmp_path):
    text = " ".join(LINE.format(n=n) for n in range(12))  # one long line
    index, chunks = _index(tmp_path, text)
    leads = index.lead_ins([c.id for c in chunks], max_chars=70)
    assert leads
    for chunk_id, lead in leads.items():
        chunk = next(c for c in chunks if c.id == chunk_id)
        assert 0 < len(lead) <= 70 and text[chunk.start - len(lead) : chunk.start] == lead
        assert lead[0].isupper() and text[chunk.start - len(lead) - 2] == "."  # a sentence start
    index.close()


def test_removed_chunks_and_unknown_ids_have_no_lead_in(tmp_path):
    index, chunks = _index(tmp_path)
    assert index.lead_ins(["no-such-chunk"]) == {}
    index.remove_file("/docs", "m.txt")
    index.commit()
    assert index.lead_ins([c.id for c in chunks]) == {}
    index.close()


def test_retrieved_passages_carry_the_lead_in(tmp_path):
    from rag.retrieve import retrieve

    index, chunks = _index(tmp_path)
    target = next(c for c in chunks[1:] if TEXT[c.start - 1] != "\n")
    passages = retrieve(target.text, index, EMB, k=len(chunks), dense_weight=1.0)
    shown = next(p for p in passages if p.chunk_id == target.id)
    assert shown.text.endswith(target.text) and len(shown.text) > len(target.text)
    lead = shown.text[: len(shown.text) - len(target.text)]
    assert lead == index.lead_ins([target.id])[target.id] and TEXT.rfind(lead, 0, target.start + 1) >= 0
    plain = retrieve(target.text, index, EMB, k=len(chunks), dense_weight=1.0, lead_in_chars=0)
    assert next(p for p in plain if p.chunk_id == target.id).text == target.text
    index.close()
