"""Tables kept as tables: PDF, HTML and Word tables as Markdown, table chunking, captions, tables off.

The PDF is written here, byte by byte: a page with a paragraph, a ruled table (lines drawn as
vector paths, as LaTeX, Word and browsers draw them) and a paragraph after it, read by the real
pdfium and pdfplumber. Chunking properties run over many random tables and chunk sizes with the
hash tokenizer, and on a real tokenizer under ``slow``.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import docx
import pytest

from ingest.chunk import _table_tokens, chunk_sections
from ingest.errors import ConfigError
from ingest.load import load_file_with_warnings
from ingest.load_html import html_sections
from ingest.load_pdf import load_pdf
from ingest.records import Section
from ingest.settings import Settings
from ingest.tables import CAPTION, markdown_table, table_blocks
from tests.fakes import HashEmbedder

SHA = "cd" * 32
CORPUS = Path(__file__).resolve().parents[2] / "corpus"
RATINGS = [
    ["Input", "Range", "Resolution"],
    ["A1", "-16 V to +16 V", "12 bit"],
    ["A2", "-16 V to +16 V", "12 bit"],
    ["IN1", "0 to 3.3 V", "12 bit"],
    ["PV1", "-5 V to +5 V", "2.5 mV"],
]


def _pdf(path: Path, rows: list[list[str]], before: str, after: str) -> Path:
    """A one-page PDF: a line of text, a ruled table of ``rows``, a line of text."""
    left, top, width, height = 72, 650, 150, 20
    ops = [f"BT /F1 11 Tf 72 700 Td ({before}) Tj ET"]
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            ops.append(f"BT /F1 10 Tf {left + c * width + 4} {top - (r + 1) * height + 6} Td ({cell}) Tj ET")
    bottom, right = top - len(rows) * height, left + len(rows[0]) * width
    for r in range(len(rows) + 1):
        ops.append(f"{left} {top - r * height} m {right} {top - r * height} l S")
    for c in range(len(rows[0]) + 1):
        ops.append(f"{left + c * width} {top} m {left + c * width} {bottom} l S")
    ops.append(f"BT /F1 11 Tf 72 {bottom - 30} Td ({after}) Tj ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def test_a_ruled_pdf_table_becomes_a_markdown_table(tmp_path: Path) -> None:
    path = _pdf(
        tmp_path / "ratings.pdf", RATINGS, "Table 1: Input ratings", "Exceeding them damages the kit."
    )
    (page,), _ = load_pdf(path, "ratings.pdf")
    expected = markdown_table(RATINGS)
    assert expected in page.text
    assert page.text.startswith(
        "Table 1: Input ratings\n\n| Input | Range | Resolution |\n| --- | --- | --- |"
    )
    assert page.text.endswith("\n\nExceeding them damages the kit.")
    # Each cell once: in the table, not again in the text around it.
    assert page.text.count("-5 V to +5 V") == 1 and page.text.count("IN1") == 1


def test_tables_off_reads_the_cells_as_a_stream_of_text(tmp_path: Path) -> None:
    path = _pdf(tmp_path / "ratings.pdf", RATINGS, "Table 1: Input ratings", "After.")
    (page,), _ = load_pdf(path, "ratings.pdf", tables=False)
    assert "|" not in page.text and "PV1" in page.text and "2.5 mV" in page.text
    (same,), _ = load_file_with_warnings(path, "ratings.pdf", tables=False)
    assert same.text == page.text


def test_tables_setting_is_checked() -> None:
    assert Settings().tables == "on" and Settings(tables="off").tables == "off"
    with pytest.raises(ConfigError, match=r"tables='sometimes'.*on, off"):
        Settings(tables="sometimes")


def test_figure_frames_on_a_real_manual_are_not_tables() -> None:
    """pdfplumber finds boxes on these pages (a figure in a frame, a labelled diagram): no table."""
    path = CORPUS / "eyes17" / "en" / "eyes17.pdf"
    if not path.is_file():
        pytest.skip(f"no sample manual at {path}")
    sections, _ = load_pdf(path, "eyes17.pdf")
    framed = [s for s in sections if s.page in (41, 42, 82, 84)]
    assert len(framed) == 4
    assert not any(table_blocks(s.text) for s in sections)
    plain, _ = load_pdf(path, "eyes17.pdf", tables=False)
    assert [s.text for s in plain] == [s.text for s in sections]


def test_html_and_docx_tables_become_markdown(tmp_path: Path) -> None:
    markup = (
        "<h1>Keys</h1><table><caption>Table 2. Default keys</caption><thead><tr><th>Key</th>"
        "<th>Action</th></tr></thead><tbody><tr><td>F1</td><td>Scroll up</td></tr>"
        "<tr><td>Alt+A</td><td>Jump | next</td></tr></tbody></table>"
        "<table><tr><td>Note</td><td>a framed note, one row</td></tr></table>"
    )
    (section,) = html_sections(markup, "k.html")
    assert section.text == (
        "Table 2. Default keys\n| Key | Action |\n| --- | --- |\n| F1 | Scroll up |\n"
        "| Alt+A | Jump \\| next |\n\nNote | a framed note, one row"
    )
    (old,) = html_sections(markup, "k.html", tables=False)
    assert "Key | Action\nF1 | Scroll up" in old.text and "---" not in old.text

    document = docx.Document()
    document.add_heading("Ratings", 1)
    table = document.add_table(rows=len(RATINGS), cols=3)
    for r, row in enumerate(RATINGS):
        for c, cell in enumerate(row):
            table.cell(r, c).text = cell
    document.save(str(tmp_path / "r.docx"))
    (word,), _ = load_file_with_warnings(tmp_path / "r.docx", "r.docx")
    assert word.text == markdown_table(RATINGS)
    (plain,), _ = load_file_with_warnings(tmp_path / "r.docx", "r.docx", tables=False)
    assert plain.text.splitlines()[:2] == ["Input | Range | Resolution", "A1 | -16 V to +16 V | 12 bit"]


def _random_table(rng: random.Random) -> list[list[str]]:
    words = ["volt", "Pin", "A1", "señal", "±16", "3.3 V", "ON", "OFF", "default", "🙂", "x" * 40]
    width = rng.randint(2, 6)
    return [
        [" ".join(rng.choice(words) for _ in range(rng.randint(1, 4 if r else 2))) for _ in range(width)]
        for r in range(rng.randint(2, 40))
    ]


def _check_table_chunks(text: str, tokenizer, size: int) -> list:
    """Every property of chunking a text with tables; returns the chunks.

    A table whose header takes half a table piece or more (pieces are half a chunk:
    ``_table_tokens``) is cut as text (``ingest.chunk``): rows then cannot all carry it, and only
    the general properties are checked for it.
    """
    chunks = chunk_sections([Section(text, "t.md")], tokenizer, size, min(4, size // 2 - 1), file_sha256=SHA)
    blocks = table_blocks(text)
    covered = bytearray(len(text))
    for c in chunks:
        assert c.table_header + text[c.start : c.end] == c.text
        assert c.tokens == len(tokenizer.token_spans(c.text)) <= size
        covered[c.start : c.end] = b"\1" * (c.end - c.start)
        for block in blocks:
            header = text[block.start : block.header_end]
            if 2 * len(tokenizer.token_spans(header)) >= _table_tokens(size):
                continue
            if any(c.start < b and a < c.end for a, b in block.rows):  # the chunk holds table rows
                assert header.strip() in c.text, "a row was separated from its header"
                rows = [text[a:b] for a, b in block.rows if c.start < b and a < c.end]
                if len(rows) > 1:  # whole rows when it holds more than one
                    assert all(row in c.text for row in rows)
    # A header may be read only as a prefix, with the line before it when it went with it.
    headers = []
    for b in blocks:
        lead = text.rfind("\n", 0, len(text[: b.start].rstrip())) + 1
        with_lead = any(text[lead : b.header_end].strip() in c.text for c in chunks)
        headers.append((lead if with_lead else b.start, b.header_end))
    missed = [
        i
        for i, ch in enumerate(text)
        if not covered[i] and not ch.isspace() and not any(a <= i < b for a, b in headers)
    ]
    assert not missed, f"characters outside every chunk at {missed[:5]}"
    return chunks


@pytest.mark.parametrize("seed", range(60))
def test_table_chunks_never_separate_a_row_from_its_header(seed: int) -> None:
    rng = random.Random(seed)
    parts = []
    for _ in range(rng.randint(1, 3)):
        parts.append(
            " ".join(rng.choice(["Text", "about", "the", "kit."]) for _ in range(rng.randint(0, 60)))
        )
        parts.append(markdown_table(_random_table(rng)))
    text = "\n\n".join(parts) + "\n\nThe end."
    chunks = _check_table_chunks(text, HashEmbedder(), rng.choice([8, 12, 16, 24, 40, 64, 128, 256]))
    assert chunks


def test_a_split_table_repeats_its_header() -> None:
    rows = [["Option", "Default"]] + [[f"weechat.option_{i}", str(i)] for i in range(30)]
    text = "Options:\n\n" + markdown_table(rows) + "\n\nAfter the table."
    chunks = _check_table_chunks(text, HashEmbedder(), 64)  # pieces of 32; the header is 10 hash tokens
    pieces = [c for c in chunks if "weechat.option_" in c.text]
    assert len(pieces) > 3
    # The line introducing the table comes with the header in every piece: each says what it lists.
    head = "Options:\n\n| Option | Default |\n| --- | --- |\n| weechat.option_"
    assert all(c.text.startswith(head) for c in pieces)
    assert all(c.tokens <= 32 for c in pieces), "a table's pieces are half a chunk at most"
    assert pieces[0].table_header == "" and all(c.table_header for c in pieces[1:])
    assert sorted(int(m) for c in pieces for m in re.findall(r"option_(\d+)", c.text)) == list(range(30))
    assert not any(c.text == "Options:" for c in chunks), "the introducing line alone in a chunk"


def test_a_long_line_before_a_table_stays_with_its_paragraph() -> None:
    """Only a line that fits in every piece with the header (under half a chunk) is repeated."""
    rows = [["Option", "Default"]] + [[f"weechat.option_{i}", str(i)] for i in range(30)]
    before = " ".join(f"word{i}" for i in range(20)) + ":"
    text = before + "\n" + markdown_table(rows)
    chunks = _check_table_chunks(text, HashEmbedder(), 64)
    pieces = [c for c in chunks if "weechat.option_" in c.text]
    assert all(c.text.startswith("| Option | Default |\n") for c in pieces)
    assert any(c.text.endswith(before) for c in chunks)


def test_a_row_longer_than_a_chunk_is_cut_with_the_header_before_each_part() -> None:
    long_cell = " ".join(f"word{i}" for i in range(100))
    text = markdown_table([["Key", "Description"], ["F1", long_cell], ["F2", "short"]])
    chunks = _check_table_chunks(text, HashEmbedder(), 48)
    parts = [c for c in chunks if "word" in c.text]
    assert len(parts) > 3 and all(
        c.text.startswith("| Key | Description |\n| --- | --- |\n") for c in parts[1:]
    )


def test_a_caption_is_never_alone_or_cut_from_its_paragraph() -> None:
    rng = random.Random(7)
    words = ["the", "sensor", "output", "is", "shown", "for", "each", "setting", "of", "amplifier", "gain"]
    paragraphs = []
    for n in range(40):
        paragraphs.append(" ".join(rng.choice(words) for _ in range(rng.randint(5, 40))) + ".")
        if n % 3 == 0:
            paragraphs.append(rng.choice(["Figure", "Fig.", "Figura", "Tabla"]) + f" {n}: gain vs setting")
    text = "\n".join(paragraphs)
    captions = [m.span() for m in CAPTION.finditer(text)]
    assert len(captions) == 14
    for size in (12, 20, 32, 64):
        chunks = chunk_sections([Section(text, "c.txt")], HashEmbedder(), size, 3, file_sha256=SHA)
        for a, b in captions:
            holding = [c for c in chunks if c.start <= a and b <= c.end]
            assert holding, f"caption {text[a:b]!r} cut at size {size}"
            assert all(c.text.strip() != text[a:b] for c in chunks), "a caption alone in a chunk"
            assert all(not (a < c.end < b or a < c.start < b) for c in chunks)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_table_chunks_with_minilm(minilm, seed: int) -> None:
    rng = random.Random(seed)
    text = "Intro.\n\n" + markdown_table(_random_table(rng)) + "\n\nAfter."
    _check_table_chunks(text, minilm, rng.choice([16, 32, 64, 128]))


def test_a_table_holding_a_table_is_layout() -> None:
    inner = "<table><tr><td>Pin</td><td>Max</td></tr><tr><td>A1</td><td>16 V</td></tr></table>"
    markup = f"<table><tr><td>{inner}</td><td>side</td></tr><tr><td>a</td><td>b</td></tr></table>"
    (section,) = html_sections(markup, "n.html")
    assert "---" not in section.text and "A1" in section.text and "side" in section.text


def test_switching_tables_reads_the_folder_again(tmp_path: Path) -> None:
    from ingest.pipeline import ingest_folder
    from ingest.store import open_index

    docs, index_dir = tmp_path / "docs", tmp_path / "ix"
    docs.mkdir()
    rows = "".join(f"<tr><td>opt{i}</td><td>{i} V</td></tr>" for i in range(3))
    (docs / "keys.html").write_text(
        f"<h1>Options</h1><table><tr><th>Option</th><th>Max</th></tr>{rows}</table>"
    )
    texts, updated = [], []
    for tables in ("on", "off", "on"):
        settings = Settings(chunk_tokens=64, chunk_overlap=4, tables=tables)
        report = ingest_folder(docs, index_dir, HashEmbedder(max_tokens=64), settings)
        updated.append(report.updated)
        with open_index(index_dir) as index:
            root = next(f.root for f in index.files())
            texts.append(sorted(index.file_vectors(root, "keys.html")))
    assert updated == [(), ("keys.html",), ("keys.html",)]  # the file is unchanged: read again for the switch
    assert (
        texts[0]
        == texts[2]
        == ["| Option | Max |\n| --- | --- |\n| opt0 | 0 V |\n| opt1 | 1 V |\n| opt2 | 2 V |"]
    )
    assert texts[1] == ["Option | Max\nopt0 | 0 V\nopt1 | 1 V\nopt2 | 2 V"]


def test_pieces_of_a_table_get_no_lead_in(tmp_path: Path) -> None:
    """A piece starts at a row: no text of its line comes before it (measured from the previous
    chunk's end, since that chunk starts with the repeated header, not found in the section)."""
    from ingest.pipeline import ingest_folder
    from ingest.store import open_index

    docs, index_dir = tmp_path / "docs", tmp_path / "ix"
    docs.mkdir()
    rows = [["Option", "Default"]] + [[f"weechat.look.option_{i}", f"value {i}"] for i in range(40)]
    (docs / "options.md").write_text("# Options\n\nSome text first.\n\n" + markdown_table(rows) + "\n")
    ingest_folder(docs, index_dir, HashEmbedder(max_tokens=64), Settings(chunk_tokens=64, chunk_overlap=4))
    with open_index(index_dir) as index:
        ids = [
            cid
            for cid, _ in index.search_dense(HashEmbedder().embed_queries(["weechat option value"])[0], 50)
        ]
        chunks = index.get_chunks(ids)
        head = "Some text first.\n\n| Option | Default |"  # the line before the table, then its header
        pieces = [c.id for c in chunks if c.text.startswith(head) and "option_3" in c.text]
        assert len([c for c in chunks if c.text.startswith(head)]) > 5 and pieces
        assert index.lead_ins(ids, 200) == {}
