"""Feedback storage and export (read back by ``docqa eval``'s loader), and source rendering."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.records import Answer, Citation
from rag.evaluate.questions import load_questions
from tests.hostile import giant_page_pdf
from ui.feedback import export_questions, feedback_path, list_feedback, record_feedback
from ui.pages import MAX_PIXELS, highlight_html, render_page, render_scale

ROOT = Path(__file__).resolve().parents[2]
EYES_EN = ROOT / "corpus" / "eyes17" / "en" / "eyes17.pdf"


def _answer(question: str, refused: bool = False) -> Answer:
    citations = (
        ()
        if refused
        else (
            Citation(1, "c1", "eyes17/en/eyes17.pdf", 8, "", "Within ±16 volts"),
            Citation(2, "c2", "weechat/quick.html", None, "Start > Add a server", "Use /server add"),
            Citation(3, "c3", "eyes17/en/eyes17.pdf", 8, "", "again page 8"),
        )
    )
    return Answer(
        question, "It is ±16 V [1][2][3]." if not refused else "Not found.", citations, refused, lang="en"
    )


def test_votes_are_stored_and_exported_as_a_question_set(tmp_path: Path) -> None:
    db = feedback_path(tmp_path / "index")
    record_feedback(db, _answer("What range on A1?"), 1, " precise ", generator="qwen")
    record_feedback(db, _answer("Bad one?"), -1)
    record_feedback(db, _answer("Pizza price?", refused=True), 1)
    stored = list_feedback(db)
    assert [(f.rating, f.comment, f.generator) for f in stored] == [
        (1, "precise", "qwen"),
        (-1, "", ""),
        (1, "", ""),
    ]
    assert stored[0].citations[1]["heading"] == "Start > Add a server"

    liked = [json.loads(line) for line in export_questions(db).splitlines()]
    assert [r["question"] for r in liked] == ["What range on A1?", "Pizza price?"]
    assert liked[0]["gold"] == ["eyes17/en/eyes17.pdf#8", "weechat/quick.html#Add a server"]
    assert liked[1]["gold"] == [] and liked[1]["answerable"] is False

    everything = [json.loads(line) for line in export_questions(db, liked_only=False).splitlines()]
    assert everything[1]["gold"] == [] and everything[1]["cited"]

    exported = tmp_path / "questions.jsonl"
    exported.write_text(export_questions(db), encoding="utf-8")
    questions = load_questions(exported).questions
    assert [str(g) for g in questions[0].gold] == liked[0]["gold"]
    assert questions[1].answerable is False


def test_bad_rating_and_no_database(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rating"):
        record_feedback(tmp_path / "f.sqlite", _answer("q"), 0)
    assert list_feedback(tmp_path / "missing.sqlite") == []
    assert export_questions(tmp_path / "missing.sqlite") == ""


def test_highlight_escapes_and_marks_across_spacing() -> None:
    html = highlight_html("Set <A1> to\n 5  V now.", "to 5 V")
    assert html == '<div class="docqa-passage">Set &lt;A1&gt; <mark>to\n 5  V</mark> now.</div>'
    assert "<mark>" not in highlight_html("nothing here", "absent words")


def test_render_page_draws_the_quote(tmp_path: Path) -> None:
    from PIL import Image

    quote = "The USB interface is handled by a device driver program"
    plain = Image.open(_png(tmp_path / "a.png", render_page(EYES_EN, 12)))
    marked = Image.open(_png(tmp_path / "b.png", render_page(EYES_EN, 12, quote=quote)))
    assert plain.size == marked.size and plain.width > 500
    changed = int((np.asarray(plain) != np.asarray(marked)).any(axis=-1).sum())
    assert 1000 < changed < plain.width * plain.height // 10  # a box over one sentence
    with pytest.raises(ValueError, match="no page 999"):
        render_page(EYES_EN, 999)


def _png(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_giant_page_is_drawn_within_the_pixel_cap_and_fast(tmp_path: Path) -> None:
    from PIL import Image

    path = giant_page_pdf(tmp_path / "giant.pdf", 14400)  # 200 x 200 inches, a few hundred bytes
    assert path.stat().st_size < 2000
    started = time.perf_counter()
    png = render_page(path, 1, quote="anything")
    seconds = time.perf_counter() - started
    image = Image.open(_png(tmp_path / "giant.png", png))
    print(f"giant page: {image.width} x {image.height} px in {seconds:.2f} s")
    assert image.width * image.height <= MAX_PIXELS
    assert image.width >= 1900  # the cap, not a thumbnail
    assert seconds < 10  # 30 s and 5.5 GB before the cap
    assert render_scale(612, 792) == 1.5  # ordinary pages keep their scale
