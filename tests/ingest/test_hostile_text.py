"""Hostile text and names found by the hostile corpus (issue 12), each a regression test.

A Markdown heading line and a PDF line of dot leaders made regexes backtrack quadratically (a
long line hung ingestion); a huge one-line section was tokenized whole (gigabytes of token
offsets); a huge heading was stored again with every chunk of its section; a file name that is not UTF-8 stopped the whole
run with a traceback (SQLite cannot store it), and names with escape sequences reached the terminal.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from pathlib import Path

from ingest.chunk import _PIECE_CHARS, chunk_sections
from ingest.control import printable
from ingest.load import load_file
from ingest.load_markdown import markdown_sections
from ingest.load_pdf import _is_leader_line, is_contents
from ingest.pipeline import ingest_folder
from ingest.records import Section, Skipped
from ingest.settings import Settings
from ingest.store import open_index
from rag.cli.ingest_cmd import _summary
from tests.fakes import HashEmbedder

SHA = "cd" * 32


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def test_a_long_markdown_heading_line_is_read_in_linear_time() -> None:
    # "# a" + 50,000 spaces + "b": the old ATX regex took ~50 s on it (5 s at 8,000 spaces).
    text = "# a" + " \t" * 25_000 + "b\nThe body.\n## C # with ## closing ##\nmore"
    sections, seconds = _timed(markdown_sections, text, "f.md")
    assert seconds < 1.0, seconds
    assert [s.text for s in sections] == ["The body.", "more"]
    assert sections[0].heading.startswith("a") and sections[0].heading.endswith("b")
    assert sections[1].heading.endswith(" > C # with ## closing")


def test_a_page_long_line_of_dot_leaders_is_judged_in_linear_time() -> None:
    # 10,000 ". " pairs per line took the old regex ~4 s a line (quadratic); 5 MB takes minutes.
    page = "\n".join([". " * 200_000] * 6)
    found, seconds = _timed(is_contents, page)
    assert seconds < 2.0 and not found, seconds


def test_leader_lines_are_judged_as_the_old_regex_judged_them() -> None:
    old = re.compile(r"(?:\.\s*){4,}\d+\s*$")
    lines = [
        "2.15 Lemon cell . . . . 27",
        "Intro....5",
        "Intro...5",
        "x . . . .\t12  ",
        "Total ....... 1.5 V",
        "....١٢",  # Arabic-Indic digits are digits to \d too
        "..  ..  7 8",
        "",
        "12",
    ]
    assert [_is_leader_line(line) for line in lines] == [bool(old.search(line)) for line in lines]


class _RecordingTokenizer(HashEmbedder):
    """The hash tokenizer, remembering the longest text it was asked to tokenize."""

    longest = 0

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        self.longest = max(self.longest, len(text))
        return super().token_spans(text)


def test_a_huge_one_line_section_is_tokenized_a_piece_at_a_time() -> None:
    text = ("word " * 100_000) + "x" * 350_000  # 850,000 characters without a line end
    tokenizer = _RecordingTokenizer()
    chunks = chunk_sections([Section(text, "big.txt")], tokenizer, 32, 4, file_sha256=SHA)
    assert tokenizer.longest <= _PIECE_CHARS
    assert all(text[c.start : c.end] == c.text and c.tokens <= 32 for c in chunks)
    assert max(len(c.text) for c in chunks) <= _PIECE_CHARS
    covered = "".join(c.text for c in chunks if c.text.startswith("x"))
    assert len(covered) == 350_000, "the long 'word' is kept whole, across several chunks"


def test_a_section_under_the_piece_size_is_chunked_as_one_text() -> None:
    text = " ".join(f"w{i}" for i in range(20_000))[: _PIECE_CHARS - 10]
    tokenizer = _RecordingTokenizer()
    chunk_sections([Section(text, "a.txt")], tokenizer, 64, 8, file_sha256=SHA)
    assert tokenizer.longest == len(text)


def test_a_huge_heading_is_cut_once_at_load_time(tmp_path: Path) -> None:
    path = tmp_path / "long-heading.md"
    path.write_text("# Title " + "very " * 400_000 + "long\n\n" + "Body text here. " * 200)
    sections = load_file(path, "long-heading.md")
    assert sections and all(len(s.heading) <= 500 for s in sections)
    assert sections[0].heading.startswith("Title very") and sections[0].heading.endswith("…")


def test_names_that_are_not_utf8_are_skipped_not_fatal(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    os.mkdir(os.fsencode(docs) + b"/bad-\xff-folder")
    for name in (b"bad-\xff\xfe-name.md", b"bad-\xff-folder/inside.md"):
        (Path(os.fsdecode(os.fsencode(docs) + b"/" + name))).write_text("# T\n\nText about volts.\n")
    (docs / "evil\n\x1b[2J name.md").write_text("# T\n\nText about amperes.\n")
    report = ingest_folder(docs, tmp_path / "ix", HashEmbedder(), Settings())
    assert report.added == ("evil\n\x1b[2J name.md",)
    assert {s.path: s.reason for s in report.skipped} == {
        "bad-\\xff\\xfe-name.md": "its name is not valid UTF-8 (shown with \\x escapes); rename it",
        "bad-\\xff-folder": "its name is not valid UTF-8 (shown with \\x escapes); rename it",
    }
    with open_index(tmp_path / "ix") as index:
        assert [f.path for f in index.files()] == ["evil\n\x1b[2J name.md"]
    printed = _summary(
        replace(report, skipped=(*report.skipped, Skipped("\x1b]8;;x\x07a.pdf", "r"))), docs, docs
    )
    assert printed == printable(printed) and "]8;;xa.pdf: r" in printed
