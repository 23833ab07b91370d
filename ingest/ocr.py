"""OCR for scanned PDF pages: the ``Ocr`` protocol, Tesseract behind it, and page rendering.

``ingest.load_pdf`` calls ``ocr_page`` for a page without a text layer: the page is rendered to a
grey image (``render_page``, at ``ocr_dpi``, at most ``MAX_PIXELS``), read by the engine in
English and Spanish together (``eng+spa``), and its language detected from the text read. One page
is in memory at a time. The engine is Tesseract from Debian (``tesseract-ocr``,
``tesseract-ocr-eng``, ``tesseract-ocr-spa``; ``make ocr`` installs them), run as a subprocess,
offline; ``bench/bench_ocr.py`` chose it and the single ``eng+spa`` pass (bench/README.md).

It does not clean the text (the loader does, as for a text layer), find tables or columns, or
deskew. A missing engine or language pack raises ``OcrUnavailable`` with the fix; the loader then
warns and skips the page as before.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ingest.errors import DocqaError

if TYPE_CHECKING:
    import pypdfium2 as pdfium
    from PIL import Image

OCR_ENGINES = ("tesseract", "off")
"""Values of the ``ocr`` setting."""

LANGUAGES = ("en", "es")
"""The languages scanned pages are read in (Tesseract packs eng and spa)."""
MAX_PIXELS = 16_000_000  # a page larger than this (a poster, a hostile MediaBox) renders smaller
_TESSERACT_CODES = {"en": "eng", "es": "spa"}  # docqa's language codes -> Tesseract's packs
_INSTALL = "install it with 'make ocr' (apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-spa)"


class OcrUnavailable(DocqaError):
    """The OCR engine or one of its language packs is not installed."""


class OcrFailed(DocqaError):
    """The OCR engine could not read one page (it failed or took too long)."""


class Ocr(Protocol):
    """An OCR engine: reads the text of one page image."""

    name: str

    def recognize(self, image: Image.Image, languages: tuple[str, ...]) -> str:
        """The text on ``image``, read as any of ``languages`` (docqa codes: "en", "es").

        Raises:
            OcrUnavailable: the engine or a language is not installed.
            OcrFailed: this image could not be read.
        """
        ...


@dataclass(frozen=True, slots=True)
class TesseractOcr:
    """Tesseract 4/5 through its command line, one page per process, offline.

    Args:
        binary: the ``tesseract`` program, found on PATH when it is a bare name.
        timeout_s: most seconds for one page (a pathological image must not hang the ingestion).
        threads: OpenMP threads per page; 1 because several threads are slower on a busy machine.
    """

    binary: str = "tesseract"
    timeout_s: float = 300.0
    threads: int = 1
    name: str = "tesseract"

    def check(self, languages: tuple[str, ...] = LANGUAGES) -> None:
        """Raise ``OcrUnavailable`` unless the program and the packs for ``languages`` are installed."""
        program = self._program()
        installed = self._installed(program)
        missing = [lang for lang in languages if _tesseract_code(lang) not in installed]
        if missing:
            packs = " ".join(f"tesseract-ocr-{_tesseract_code(lang)}" for lang in missing)
            raise OcrUnavailable(f"Tesseract has no language pack for {', '.join(missing)}; install {packs}")

    def recognize(self, image: Image.Image, languages: tuple[str, ...]) -> str:
        """The text Tesseract reads on ``image`` with the packs of ``languages`` together."""
        program = self._program()
        codes = "+".join(_tesseract_code(lang) for lang in languages)
        png = io.BytesIO()
        image.save(png, format="PNG")
        env = {**os.environ, "OMP_THREAD_LIMIT": str(self.threads)}
        try:
            done = subprocess.run(
                [program, "stdin", "stdout", "-l", codes, "--psm", "3"],
                input=png.getvalue(),
                capture_output=True,
                timeout=self.timeout_s,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OcrFailed(f"Tesseract took over {self.timeout_s:.0f} s on the page") from None
        except OSError as err:
            raise OcrUnavailable(f"cannot run {program} ({err.strerror or err}); {_INSTALL}") from None
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = message[-1] if message else f"exit status {done.returncode}"
            if "Failed loading language" in done.stderr.decode("utf-8", "replace"):
                raise OcrUnavailable(f"Tesseract is missing a language pack of {codes}; {_INSTALL}")
            raise OcrFailed(f"Tesseract failed on the page ({detail})")
        return done.stdout.decode("utf-8", "replace")

    def _program(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise OcrUnavailable(f"Tesseract ('{self.binary}') is not on PATH; {_INSTALL}")
        return found

    def _installed(self, program: str) -> set[str]:
        try:
            done = subprocess.run([program, "--list-langs"], capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise OcrUnavailable(f"cannot run {program} ({err}); {_INSTALL}") from None
        lines = (done.stdout + done.stderr).decode("utf-8", "replace").splitlines()
        return {line.strip() for line in lines if line.strip() and " " not in line.strip()}


@dataclass(frozen=True, slots=True)
class PageOcr:
    """What the PDF loader needs to read scanned pages.

    Args:
        engine: the OCR engine.
        dpi: resolution pages are rendered at.
        progress: called with (page number, page count) before each page is read.
    """

    engine: Ocr
    dpi: int = 300
    progress: Callable[[int, int], None] | None = None


def load_ocr(engine: str, dpi: int, progress: Callable[[int, int], None] | None = None) -> PageOcr | None:
    """The OCR the ``ocr`` and ``ocr_dpi`` settings name, or None for "off".

    Never raises for a missing program: that is found, and reported, at the first scanned page.
    """
    if engine == "off":
        return None
    if engine == "tesseract":
        return PageOcr(TesseractOcr(), dpi, progress)
    raise ValueError(f"unknown OCR engine {engine!r}: use one of {', '.join(OCR_ENGINES)}")


def render_page(page: pdfium.PdfPage, dpi: int) -> Image.Image:
    """A page as a grey image at ``dpi``, scaled down to at most ``MAX_PIXELS`` pixels."""
    width, height = page.get_size()  # in points, 1/72 inch
    scale = dpi / 72
    area = max(width * height, 1.0) * scale * scale
    if area > MAX_PIXELS:
        scale *= math.sqrt(MAX_PIXELS / area)
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        return bitmap.to_pil().convert("L")
    finally:
        bitmap.close()


def ocr_page(ocr: Ocr, page: pdfium.PdfPage, dpi: int, languages: tuple[str, ...] = LANGUAGES) -> str:
    """Render ``page`` and read it with all ``languages`` at once (its language is detected later,
    from the text, as for any page).

    One pass with ``eng+spa`` reads English and Spanish pages about as well as the page's own
    language, at half the cost of a second pass (bench/bench_ocr.py).
    """
    image = render_page(page, dpi)
    try:
        return ocr.recognize(image, languages)
    finally:
        image.close()


def _tesseract_code(lang: str) -> str:
    """docqa's code to Tesseract's: ``_tesseract_code("es") == "spa"``; others pass through."""
    return _TESSERACT_CODES.get(lang, lang)
