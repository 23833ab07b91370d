"""PDF loading: the real expEYES manuals, and hand-made PDFs for scanned, blank, broken and encrypted files."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from ingest.errors import LoadError
from ingest.load import load_file, load_file_with_warnings
from tests.conftest import ROOT

CORPUS = ROOT / "corpus"
EN_PDF = CORPUS / "eyes17" / "en" / "eyes17.pdf"
ES_PDF = CORPUS / "eyes17" / "es" / "eyes17.pdf"

# The padding string of the PDF standard security handler (ISO 32000-1, 7.6.3.3).
_PAD = bytes.fromhex("28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a")


def _rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def make_pdf(pages: list[str], password: str | None = None) -> bytes:
    """A small valid PDF; each page is "text:<words>", "image" (a scan) or "blank".

    With ``password``, it is encrypted (RC4 40-bit, revision 2) with that user password.
    """
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    objects.append(b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray"
                   b" /BitsPerComponent 8 /Length 4 >>\nstream\n\x10\x80\x80\x10\nendstream")  # fmt: skip
    kids = []
    for page in pages:
        if page.startswith("text:"):
            escaped = page[5:].replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            content = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
        else:
            content = b"q 300 0 0 300 100 300 cm /Im1 Do Q" if page == "image" else b""
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
                       b" /Resources << /Font << /F1 3 0 R >> /XObject << /Im1 4 0 R >> >> >>"
                       % len(objects))  # fmt: skip
        kids.append(b"%d 0 R" % len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    file_id = hashlib.md5(b"docqa-test").digest()
    trailer = b"/Root 1 0 R /ID [<%s> <%s>]" % (file_id.hex().encode(), file_id.hex().encode())
    if password is not None:
        objects, encrypt = _encrypt(objects, password.encode("latin-1"), file_id)
        objects.append(encrypt)
        trailer += b" /Encrypt %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


def _encrypt(objects: list[bytes], password: bytes, file_id: bytes) -> tuple[list[bytes], bytes]:
    """Encrypt every stream with the standard handler, revision 2 (algorithms 2, 3 and 4)."""
    user = (password + _PAD)[:32]
    owner_key = hashlib.md5((b"owner" + _PAD)[:32]).digest()[:5]
    owner_entry = _rc4(owner_key, user)
    permissions = -4
    key = hashlib.md5(user + owner_entry + struct.pack("<i", permissions) + file_id).digest()[:5]
    user_entry = _rc4(key, _PAD)
    encrypted = []
    for number, body in enumerate(objects, start=1):
        if b"stream\n" in body:
            head, rest = body.split(b"stream\n", 1)
            data = rest[: -len(b"\nendstream")]
            object_key = hashlib.md5(key + struct.pack("<i", number)[:3] + b"\x00\x00").digest()[:10]
            body = head + b"stream\n" + _rc4(object_key, data) + b"\nendstream"
        encrypted.append(body)
    encrypt = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (
        owner_entry.hex().encode(), user_entry.hex().encode(), permissions)  # fmt: skip
    return encrypted, encrypt


@pytest.fixture(scope="module")
def english() -> list:
    return load_file(EN_PDF, "eyes17/en/eyes17.pdf")


def test_english_manual_has_one_section_per_page_with_text_in_order(english):
    pages = [s.page for s in english]
    assert pages == sorted(set(pages)), "one section per page, in page order"
    assert pages[0] == 1 and pages[-1] == 107
    assert 100 <= len(english) <= 107
    assert 6 not in pages  # the blank verso page after the table of contents
    assert all(s.source == "eyes17/en/eyes17.pdf" and s.lang == "en" for s in english)


def test_english_manual_text_is_on_the_right_page(english):
    by_page = {s.page: s for s in english}
    assert "IC555 is a very popular time circuit IC" in by_page[51].text
    assert [s.page for s in english if "IC555 is a very popular time circuit IC" in s.text] == [51]
    assert "The constant current source can be switched ON and OFF" in by_page[8].text


def test_pdf_text_is_cleaned_but_keeps_lines(english):
    preface = next(s for s in english if s.page == 2).text
    assert "UNIVERSITY ACCELERATOR CENTRE" in preface  # pdfium's hyphenation mark joined
    assert "students performing experiments" in preface
    assert "\n" in preface
    for section in english:
        assert "\r" not in section.text and "\x02" not in section.text and "  " not in section.text
        assert section.text == section.text.strip()


def test_pdf_headings_come_from_the_outline(english):
    by_page = {s.page: s.heading for s in english}
    assert by_page[1] == ""  # before the first bookmark
    assert by_page[7] == "Introduction"
    assert by_page[8] == "Introduction > The equipment > External connections"
    assert by_page[51].startswith("Electronics > ")  # the page opens in 3.5's discussion
    assert sum(1 for h in by_page.values() if h) > 90


@pytest.mark.parametrize("pdf", [EN_PDF, ES_PDF])
def test_table_of_contents_pages_are_left_out_with_a_warning(pdf):
    sections, warnings = load_file_with_warnings(pdf, "eyes17.pdf")
    pages = {s.page for s in sections}
    assert not pages & {3, 4, 5} and {2, 7} <= pages  # the preface and chapter 1 stay
    assert "table of contents not indexed (pages 3, 4, 5)" in warnings
    assert not any(". . . . . . . ." in s.text for s in sections)


def test_spanish_manual_is_detected_as_spanish():
    sections = load_file(ES_PDF, "eyes17/es/eyes17.pdf")
    assert 70 <= len(sections) <= 79
    spanish = [s for s in sections if s.lang == "es"]
    assert len(spanish) >= 0.9 * len(sections)  # a few pages are untranslated English
    by_page = {s.page: s for s in sections}
    assert by_page[1].lang == "es" and "Manual del Usuario" in by_page[1].text
    assert by_page[51].heading.endswith("Respuesta transitoria de circuitos RL")


def test_handmade_pdf_reads_text_and_any_case_suffix(tmp_path: Path):
    path = tmp_path / "two.PDF"
    path.write_bytes(make_pdf(["text:Hello voltage page one", "text:Second page (two)"]))
    sections = load_file(path, "two.PDF")
    assert [(s.page, s.text, s.heading) for s in sections] == [
        (1, "Hello voltage page one", ""),
        (2, "Second page (two)", ""),
    ]


def test_scanned_page_is_reported_and_blank_page_skipped(tmp_path: Path):
    path = tmp_path / "mixed.pdf"
    path.write_bytes(make_pdf(["text:Real text here", "image", "blank", "text:More text"]))
    sections, warnings = load_file_with_warnings(path, "mixed.pdf")
    assert [s.page for s in sections] == [1, 4]
    assert warnings == ["page 2 has no text layer (scanned?)"]


@pytest.mark.parametrize("pages", [["image", "image"], ["blank"]])
def test_pdf_without_any_text_is_refused(tmp_path: Path, pages):
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(pages))
    with pytest.raises(LoadError, match=r"no text layer on any page \(scanned PDF\?\); OCR it first"):
        load_file(path, "scan.pdf")


def test_blank_pdf_made_by_pdfium_is_refused(tmp_path: Path):
    doc = pdfium.PdfDocument.new()
    doc.new_page(595, 842)
    doc.save(tmp_path / "blank.pdf")
    doc.close()
    with pytest.raises(LoadError, match="no text layer on any page"):
        load_file(tmp_path / "blank.pdf", "blank.pdf")


def test_encrypted_pdf_is_refused(tmp_path: Path):
    path = tmp_path / "secret.pdf"
    path.write_bytes(make_pdf(["text:Top secret wiring"], password="s3cret"))
    # The fixture is a real encrypted PDF: it opens with the password and shows its text.
    doc = pdfium.PdfDocument(path, password="s3cret")
    assert "Top secret wiring" in doc[0].get_textpage().get_text_range()
    doc.close()
    with pytest.raises(LoadError, match=r"^encrypted PDF; decrypt it first$"):
        load_file(path, "secret.pdf")


@pytest.mark.parametrize(
    "data",
    [EN_PDF.read_bytes()[:3000], b"%PDF-1.7\n" + bytes(range(256)) * 8, b"<html>not a pdf</html>"],
    ids=["truncated", "garbage-after-header", "html-named-pdf"],
)
def test_corrupt_pdf_is_refused_with_a_reason(tmp_path: Path, data: bytes):
    path = tmp_path / "broken.pdf"
    path.write_bytes(data)
    with pytest.raises(LoadError, match=r"^not a readable PDF: .*; check that the file is complete$"):
        load_file(path, "broken.pdf")
