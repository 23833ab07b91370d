"""HTML and EPUB loading: the real WeeChat and expEYES manuals, and small made-up pages."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from ingest.errors import LoadError
from ingest.load import load_file, load_file_with_warnings
from ingest.load_html import html_sections
from tests.conftest import ROOT, SHARED

WEECHAT = SHARED / "manuals" / "weechat"
EYES17 = SHARED / "manuals" / "eyes17"


def test_weechat_quickstart_sections_follow_its_chapters():
    sections = load_file(ROOT / "corpus" / "weechat" / "weechat_quickstart.en.html", "q.html")
    headings = [s.heading for s in sections]
    assert len(sections) == 14  # the title block and 13 chapters
    assert all(h.startswith("WeeChat quick start guide") for h in headings)
    assert headings[1] == "WeeChat quick start guide > 1. Start WeeChat"
    assert headings[-1] == "WeeChat quick start guide > 13. More documentation"
    server = sections[headings.index("WeeChat quick start guide > 5. Add an IRC server")]
    assert "/server add libera irc.libera.chat/6697 -ssl" in server.text
    assert all(s.lang == "en" and s.page is None and s.source == "q.html" for s in sections)


def test_weechat_html_drops_table_of_contents_styles_and_footer():
    sections = load_file(WEECHAT / "weechat_quickstart.en.html", "q.html")
    text = "\n".join(s.text for s in sections)
    assert "Table of Contents" not in text
    assert "font-family" not in text and "{" not in text.split("/set")[0]  # no CSS
    assert "Last updated" not in text
    assert all(line == line.strip() for s in sections for line in s.text.split("\n") if "$" not in line)


def test_weechat_spanish_guide_is_spanish_with_spanish_headings():
    sections = load_file(WEECHAT / "weechat_quickstart.es.html", "q.es.html")
    assert "WeeChat guía rápida > 5. Añadir un servidor IRC" in [s.heading for s in sections]
    assert all(s.lang == "es" for s in sections)


def test_weechat_user_guide_nests_headings_and_keeps_table_rows():
    sections = load_file(WEECHAT / "weechat_user.en.html", "user.html")
    assert len(sections) > 150
    assert all(s.heading.startswith("WeeChat user’s guide") for s in sections)
    options = next(s for s in sections if s.heading.endswith("5.5.2. Options"))
    assert options.heading.count(" > ") == 3  # title > 5. > 5.5. > 5.5.2.
    assert "| format | /set buflist.format.* | Formats used to display list of buffers. |" in options.text


def test_html_splitter_keeps_structure_and_drops_chrome():
    markup = """<html lang="en"><head><title>Widget manual</title><style>p {color: red}</style></head>
    <body><nav><a href="/">Home</a> | <a href="/shop">Shop</a></nav>
    <header><img src="logo.png"> Widget Corp</header>
    <p>Read   this
       first.</p>
    <h1>Widget</h1><p>Intro <b>bold</b> text.</p>
    <h2>Setup</h2><ul><li>Unpack</li><li>Plug in</li></ul>
    <pre>  $ widget --start
    ok</pre>
    <h3>Cables</h3><table><tr><th>Port</th><th>Use</th></tr><tr><td><p>A1</p></td><td>input</td></tr></table>
    <h2>Empty</h2><h2>Care</h2><p>Keep dry.</p><script>alert("x")</script>
    <footer>© Widget Corp</footer></body></html>"""
    sections = html_sections(markup, "w.html")
    assert [(s.heading, s.text) for s in sections] == [
        ("Widget manual", "Read this first."),
        ("Widget", "Intro bold text."),
        ("Widget > Setup", "Unpack\nPlug in\n\n  $ widget --start\n    ok"),
        ("Widget > Setup > Cables", "| Port | Use |\n| --- | --- |\n| A1 | input |"),
        ("Widget > Care", "Keep dry."),
    ]


def test_html_file_with_declared_latin1_encoding(tmp_path: Path):
    path = tmp_path / "old.htm"
    path.write_bytes('<meta charset="iso-8859-1"><h1>Año</h1><p>Señal cuadrada.</p>'.encode("latin-1"))
    assert [(s.heading, s.text) for s in load_file(path, "old.htm")] == [("Año", "Señal cuadrada.")]


def test_html_without_text_is_refused(tmp_path: Path):
    path = tmp_path / "empty.html"
    path.write_text("<html><head><script>var x = 1;</script></head><body><nav>Home</nav></body></html>")
    with pytest.raises(LoadError, match="no text"):
        load_file(path, "empty.html")


@pytest.fixture(scope="module")
def english_epub() -> list:
    return load_file(EYES17 / "en" / "eyes17.epub", "eyes17.epub")


def test_epub_follows_the_spine_with_chapter_heading_paths(english_epub):
    headings = [s.heading for s in english_epub]
    assert len(english_epub) > 200
    assert all(headings)
    assert headings[0] == "EYES17 User Manual > Introduction"
    equipment = headings.index("The equipment")
    resistance = headings.index("Measuring Resistance")
    assert equipment < resistance  # spine order: chapter 1.2 before 2.2
    assert "Measuring Resistance > Objective" in headings
    coding_intro = next(s for s in english_epub if s.text.startswith("The GUI programs described"))
    assert coding_intro.heading == "expEYES-17"  # text before 9.0.xhtml's first heading: book title
    assert all(s.lang == "en" and s.source == "eyes17.epub" for s in english_epub)


def test_epub_skips_non_linear_copies_and_keeps_math(english_epub):
    intro = "Science is the study of the physical world"
    assert sum(intro in s.text for s in english_epub) == 1  # index.latex.xhtml is non-linear
    resistance = next(s for s in english_epub if s.heading == "Measuring Resistance")
    assert "5.1k Ω resistor connected to 3.3V internally" in resistance.text


def test_spanish_epub_is_mostly_spanish():
    sections, warnings = load_file_with_warnings(EYES17 / "es" / "eyes17.epub", "es.epub")
    assert warnings == []
    assert sum(s.lang == "es" for s in sections) >= 0.9 * len(sections)
    assert any(s.heading.startswith("El material > Conexiones externas") for s in sections)


def test_corrupt_epub_is_refused(tmp_path: Path):
    path = tmp_path / "broken.epub"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive" * 10)
    with pytest.raises(LoadError, match="not a readable EPUB"):
        load_file(path, "broken.epub")


def test_drm_epub_is_refused(tmp_path: Path):
    path = tmp_path / "drm.epub"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr(
            "META-INF/encryption.xml",
            '<encryption><EncryptedData><CipherData><CipherReference URI="OEBPS/ch1.xhtml"/>'
            "</CipherData></EncryptedData></encryption>",
        )
    with pytest.raises(LoadError, match="DRM-protected EPUB"):
        load_file(path, "drm.epub")
