"""Users' verdicts on answers, kept in SQLite and exported as a question set for ``docqa eval``.

Each vote stores the question, the answer, its citations, the rating (+1 or -1) and an optional
comment, in ``<index>/feedback/feedback.sqlite``. ``export_questions`` writes the liked answers
(or all) as JSON lines ``{id, question, answer, gold, answerable, lang, source}`` where ``gold``
lists the cited passages as ``file#page`` (or ``file#heading``), the form ``rag.evaluate`` reads.
This module does no Streamlit work; ``ui.chat`` draws the buttons.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ingest.layout import FEEDBACK
from ingest.records import Answer, Citation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    lang TEXT NOT NULL,
    refused INTEGER NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NOT NULL DEFAULT '',
    generator TEXT NOT NULL DEFAULT '',
    citations TEXT NOT NULL  -- JSON list of {number, chunk_id, source, page, heading, quote}
)
"""


@dataclass(frozen=True, slots=True)
class Feedback:
    """One stored vote."""

    id: int
    created: float
    question: str
    answer: str
    lang: str
    refused: bool
    rating: int
    comment: str
    generator: str
    citations: tuple[dict, ...]


def feedback_path(index_dir: Path) -> Path:
    """Where the votes for the index in ``index_dir`` are kept."""
    return Path(index_dir) / FEEDBACK


@contextmanager
def _connect(db_path: Path) -> Iterator[sqlite3.Connection]:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute(_SCHEMA)
        yield conn


def gold_ref(citation: Citation) -> str:
    """A citation as a gold reference: ``file#page``, ``file#heading`` or ``file``.

    >>> gold_ref(Citation(1, "c", "eyes17/en/eyes17.pdf", 12, "", "q"))
    'eyes17/en/eyes17.pdf#12'
    """
    if citation.page is not None:
        return f"{citation.source}#{citation.page}"
    leaf = citation.heading.rsplit(" > ", 1)[-1].strip()
    return f"{citation.source}#{leaf}" if leaf else citation.source


def record_feedback(
    db_path: Path, answer: Answer, rating: int, comment: str = "", *, generator: str = ""
) -> int:
    """Store a vote on ``answer``; return its id.

    Args:
        db_path: the feedback database (see ``feedback_path``).
        answer: the answer voted on, with its question and citations.
        rating: 1 (helpful) or -1 (not helpful).
        comment: what the user wrote, if anything.
        generator: the generator that wrote the answer.

    Raises:
        ValueError: ``rating`` is not 1 or -1.
    """
    if rating not in (1, -1):
        raise ValueError(f"rating must be 1 or -1, not {rating!r}")
    citations = [
        {
            "number": c.number,
            "chunk_id": c.chunk_id,
            "source": c.source,
            "page": c.page,
            "heading": c.heading,
            "quote": c.quote,
        }
        for c in answer.citations
    ]
    with _connect(db_path) as conn:
        cursor = conn.execute(
            "INSERT INTO feedback (created, question, answer, lang, refused, rating, comment, generator,"
            " citations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                answer.question,
                answer.text,
                answer.lang,
                int(answer.refused),
                rating,
                comment.strip(),
                generator,
                json.dumps(citations, ensure_ascii=False),
            ),
        )
        return int(cursor.lastrowid)


def list_feedback(db_path: Path) -> list[Feedback]:
    """All votes, oldest first; an empty list when there is no database yet."""
    if not db_path.is_file():
        return []
    with _connect(db_path) as conn:
        rows = conn.execute(
            "SELECT id, created, question, answer, lang, refused, rating, comment, generator, citations"
            " FROM feedback ORDER BY id"
        ).fetchall()
    return [
        Feedback(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8], tuple(json.loads(r[9])))
        for r in rows
    ]


def export_questions(db_path: Path, *, liked_only: bool = True) -> str:
    """The votes as a JSONL question set for ``docqa eval``.

    Liked answers give questions with gold passages (their citations); a liked refusal gives an
    unanswerable question (empty ``gold``). Disliked answers are left out unless
    ``liked_only`` is False, and then keep their citations only as ``cited`` (not as gold).
    """
    lines = []
    for item in list_feedback(db_path):
        if liked_only and item.rating < 0:
            continue
        refs = list(
            dict.fromkeys(
                gold_ref(
                    Citation(c["number"], c["chunk_id"], c["source"], c["page"], c["heading"], c["quote"])
                )
                for c in item.citations
            )
        )
        record = {
            "id": f"feedback-{item.id}",
            "question": item.question,
            "answer": "" if item.refused else item.answer,
            "gold": refs if item.rating > 0 else [],
            "answerable": not (item.refused and item.rating > 0),
            "lang": item.lang,
            "source": "feedback",
            "rating": item.rating,
        }
        if item.rating < 0:
            record["cited"] = refs
        if item.comment:
            record["comment"] = item.comment
        lines.append(json.dumps(record, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")
