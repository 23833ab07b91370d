"""load_file: dispatch by suffix, bad inputs, and the text, Markdown and Word loaders."""

from __future__ import annotations

import os
import random
from pathlib import Path

import docx
import pytest

from ingest.errors import LoadError
from ingest.load import SUPPORTED_SUFFIXES, load_file, load_file_with_warnings
from ingest.records import Section


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_supported_suffixes_are_lower_case_and_cover_the_formats():
    assert {".pdf", ".html", ".htm", ".epub", ".md", ".txt", ".docx"} <= SUPPORTED_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)


@pytest.mark.parametrize("name", ["empty.pdf", "empty.txt", "empty.epub", "empty.docx", "EMPTY.MD"])
def test_zero_byte_file_is_refused(tmp_path: Path, name: str):
    with pytest.raises(LoadError, match=r"^empty file \(0 bytes\)$"):
        load_file(_write(tmp_path, name, b""), name)


@pytest.mark.parametrize("name", ["photo.jpg", "archive.tar.gz", "Makefile", "notes.doc"])
def test_unsupported_type_is_refused_with_the_supported_list(tmp_path: Path, name: str):
    with pytest.raises(LoadError, match=r"^unsupported file type .*; supported: .*\.pdf"):
        load_file(_write(tmp_path, name, b"something"), name)


def test_directory_and_missing_file_are_refused(tmp_path: Path):
    (tmp_path / "folder.pdf").mkdir()
    with pytest.raises(LoadError, match="not a regular file"):
        load_file(tmp_path / "folder.pdf", "folder.pdf")
    with pytest.raises(LoadError, match="not a regular file"):
        load_file(tmp_path / "missing.txt", "missing.txt")


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
        random.Random(7).randbytes(4000).replace(b"\x00", b"\x01"),  # no NUL: caught by control chars
        b"ELF" + bytes(range(1, 32)) * 20,
    ],
    ids=["png", "random-no-nul", "control-characters"],
)
def test_binary_data_named_txt_is_refused(tmp_path: Path, data: bytes):
    with pytest.raises(LoadError, match=r"^binary data, not text$"):
        load_file(_write(tmp_path, "data.txt", data), "data.txt")


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("Señal cuadrada de 5 V: conecte el cable al terminal rojo, luego mida la tensión.".encode("latin-1"),
         "Señal cuadrada de 5 V: conecte el cable al terminal rojo, luego mida la tensión."),
        ("Año".encode("cp1252"), "Año"),
        ("Café crème, “quotes” — dash".encode("cp1252"), "Café crème, “quotes” — dash"),
        ("\ufeffUTF-8 with BOM: ñandú".encode(), "UTF-8 with BOM: ñandú"),
        ("Voltage ± 16 V, Ω".encode("utf-16"), "Voltage ± 16 V, Ω"),
        (b"Windows\r\nline\r\nends", "Windows\nline\nends"),
    ],
    ids=["latin-1", "cp1252-short", "cp1252-quotes", "utf-8-bom", "utf-16-bom", "crlf"],
)  # fmt: skip
def test_text_in_any_common_encoding_is_decoded(tmp_path: Path, encoded: bytes, expected: str):
    sections = load_file(_write(tmp_path, "notes.txt", encoded), "docs/notes.txt")
    assert sections == [Section(expected, "docs/notes.txt", None, "", sections[0].lang)]


def test_text_file_gets_language_and_no_heading(tmp_path: Path):
    text = "Para medir un voltaje, conecte la señal a la entrada A1 y abra el osciloscopio. " * 4
    (section,) = load_file(_write(tmp_path, "guia.TXT", text), "guia.TXT")
    assert (section.lang, section.heading, section.page) == ("es", "", None)


def test_whitespace_only_text_is_refused(tmp_path: Path):
    with pytest.raises(LoadError, match="only whitespace"):
        load_file(_write(tmp_path, "blank.txt", " \n\t\n"), "blank.txt")


def test_markdown_splits_at_headings_but_not_inside_code(tmp_path: Path):
    markdown = """Intro before any heading.

# Widget

Overview text.

## Install

```bash
# this is a shell comment, not a heading
pip install widget
```

### On Linux ###
Use the package manager.

Troubleshooting
---------------
Restart it.
"""
    sections = load_file(_write(tmp_path, "README.md", markdown), "README.md")
    assert [(s.heading, s.text) for s in sections] == [
        ("", "Intro before any heading."),
        ("Widget", "Overview text."),
        ("Widget > Install", "```bash\n# this is a shell comment, not a heading\npip install widget\n```"),
        ("Widget > Install > On Linux", "Use the package manager."),
        ("Widget > Troubleshooting", "Restart it."),
    ]
    assert all(s.lang == "en" for s in sections)


def test_markdown_with_only_headings_is_refused(tmp_path: Path):
    with pytest.raises(LoadError, match="besides headings"):
        load_file(_write(tmp_path, "empty.md", "# One\n## Two\n"), "empty.md")


def _make_docx(path: Path) -> None:
    document = docx.Document()
    document.add_heading("Widget Manual", 0)
    document.add_paragraph("Read all of this before use.")
    document.add_heading("Installation", 1)
    document.add_paragraph("Unpack the widget.")
    document.add_heading("Cables", 2)
    table = document.add_table(rows=3, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Port", "Use"
    table.cell(1, 0).text, table.cell(1, 1).text = "A1", "analog input"
    merged = table.cell(2, 0).merge(table.cell(2, 1))
    merged.text = "GND is shared"
    document.add_heading("Mantenimiento", 1)
    document.add_paragraph("Limpie el equipo con un paño seco.")
    document.save(str(path))


def test_docx_headings_form_paths_and_tables_become_rows(tmp_path: Path):
    path = tmp_path / "manual.docx"
    _make_docx(path)
    sections = load_file(path, "manual.docx")
    assert [(s.heading, s.text) for s in sections] == [
        ("Widget Manual", "Read all of this before use."),
        ("Widget Manual > Installation", "Unpack the widget."),
        (
            "Widget Manual > Installation > Cables",
            "| Port | Use |\n| --- | --- |\n| A1 | analog input |\n| GND is shared |  |",
        ),
        ("Widget Manual > Mantenimiento", "Limpie el equipo con un paño seco."),
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "legacy .doc or password-protected"),
        (b"PK\x03\x04 truncated zip" * 20, "not a readable .docx"),
        (b"just some text, renamed", "not a readable .docx"),
    ],
    ids=["ole-compound", "truncated-zip", "text"],
)
def test_bad_docx_is_refused(tmp_path: Path, data: bytes, reason: str):
    with pytest.raises(LoadError, match=reason):
        load_file(_write(tmp_path, "bad.docx", data), "bad.docx")


def test_library_errors_never_escape(tmp_path: Path):
    """Random bytes under every supported suffix: a LoadError or sections, nothing else."""
    rng = random.Random(1)
    for suffix in sorted(SUPPORTED_SUFFIXES):
        for size in (1, 100, 5000):
            path = _write(tmp_path, f"fuzz{size}{suffix}", rng.randbytes(size))
            try:
                sections, warnings = load_file_with_warnings(path, path.name)
            except LoadError as err:
                assert str(err)
            else:
                assert sections and all(isinstance(s, Section) for s in sections)
                assert isinstance(warnings, list)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_refused(tmp_path: Path):
    path = _write(tmp_path, "locked.txt", "secret")
    path.chmod(0)
    with pytest.raises(LoadError, match="cannot read the file"):
        load_file(path, "locked.txt")


ESCAPES = "\x1b[2J\x1b]8;;http://attacker.example\x07\x9b31m\x00\x08"
FILLER = "The manual explains each input in turn, with a figure and a worked example. " * 30


@pytest.mark.parametrize(
    ("name", "data"),
    [
        (
            "notes.md",
            f"# Setup{ESCAPES}\n\nConnect{ESCAPES} the red wire.\r\nThen read\x0cthe value.\n{FILLER}\n",
        ),
        (
            "page.html",
            f"<h1>Setup{ESCAPES}</h1><p>Connect{ESCAPES} the red wire.</p><p>Then read the value.</p>",
        ),
        (
            "notes.txt",
            f"Setup{ESCAPES}\nConnect{ESCAPES} the red wire.\r\nThen read\x0cthe value.\n{FILLER}\n",
        ),
    ],
    ids=["markdown", "html", "text"],
)
def test_control_characters_are_stripped_at_load_time_for_every_format(tmp_path: Path, name: str, data: str):
    sections = load_file(_write(tmp_path, name, data.replace("\x00", "")), name)
    for section in sections:
        for field in (section.text, section.heading):
            assert not any((ord(ch) < 32 and ch not in "\t\n") or 0x7F <= ord(ch) <= 0x9F for ch in field), (
                field
            )
    text = "\n".join(s.heading + "\n" + s.text for s in sections)
    assert "Setup[2J]8;;http://attacker.example31m" in text and "Connect" in text and "the red wire" in text


def test_a_file_of_only_control_characters_is_skipped(tmp_path: Path):
    with pytest.raises(LoadError, match="only control characters"):
        load_file(_write(tmp_path, "x.html", "<html><body><p>\x1b\x07\x1b\x08</p></body></html>"), "x.html")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        (
            "faq.html",
            "<h1>FAQ <a href='#faq' title='Permalink to this heading'>¶</a></h1><p>Questions.</p>"
            "<h2>Is HackRF full-duplex?¶</h2><p>No, half-duplex.</p>"
            "<h3><a href='#s3'>🔗</a> Using C# §</h3><p>Bindings exist.</p>",
        ),
        (
            "faq.md",
            "# FAQ ¶\n\nQuestions.\n\n## Is HackRF full-duplex? ¶\n\nNo, half-duplex.\n\n"
            "### # ⚓️ Using C#\n\nBindings exist.\n",
        ),
    ],
    ids=["html", "markdown"],
)
def test_permalink_signs_leave_headings_but_not_words(tmp_path: Path, name: str, data: str):
    sections = load_file(_write(tmp_path, name, data), name)
    assert [s.heading for s in sections] == [
        "FAQ",
        "FAQ > Is HackRF full-duplex?",
        "FAQ > Is HackRF full-duplex? > Using C#",
    ]
    assert sections[1].text == "No, half-duplex."


def test_a_heading_of_many_permalink_signs_is_cleaned_in_linear_time(tmp_path: Path):
    """100,000 signs on each side: one pass (stripping a sign at a time would copy the title each time)."""
    heading = "# " + "¶ # " * 100_000 + "Setup" + " § ⚓" * 100_000
    sections = load_file(_write(tmp_path, "long.md", f"{heading}\n\nConnect the red wire.\n"), "long.md")
    assert [s.heading for s in sections] == ["Setup"]
