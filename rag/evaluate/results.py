"""Records of an evaluation run, and their JSON form (one line per question in results.jsonl).

``QuestionResult`` is everything measured for one question; ``RunResult`` a whole run with its
summary. Passage texts are cut to a snippet so result files stay small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SNIPPET_CHARS = 240


@dataclass(frozen=True, slots=True)
class Retrieved:
    """A retrieved passage as recorded: where it is, its score, and whether it is gold."""

    chunk_id: str
    source: str
    page: int | None
    heading: str
    score: float
    relevant: bool
    snippet: str = ""

    @property
    def location(self) -> str:
        """``file#page`` or ``file#heading``, as gold references are written."""
        where = self.page if self.page is not None else self.heading
        return f"{self.source}#{where}" if where not in (None, "") else self.source


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """The engine's answer as recorded: text, flags, citations and timings (seconds)."""

    text: str
    refused: bool
    unsupported: bool
    lang: str
    citations: tuple[Mapping[str, Any], ...] = ()
    timings: Mapping[str, Any] = field(default_factory=dict)
    refusal_score: float | None = None  # the generator's probability of the refusal sentence
    extracted: bool = False  # a verbatim quote of a passage, not the model's words (rag.extractive)


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """What one question scored.

    Args:
        id, question, lang, answerable: copied from the question.
        gold: the gold references as written (``str(GoldRef)``).
        gold_answer: the gold answer text, "" when none.
        retrieved: the retrieved passages, best first.
        gold_rank: 1-based rank of the first gold passage; None when not retrieved or no gold.
        scores: metric name -> value; None where a metric does not apply to this question.
        latency_s: seconds for this question (retrieval only, or the whole answer).
        answer: the answer, None in retrieval-only runs.
    """

    id: str
    question: str
    lang: str
    answerable: bool
    gold: tuple[str, ...]
    gold_answer: str
    retrieved: tuple[Retrieved, ...]
    gold_rank: int | None
    scores: Mapping[str, float | None]
    latency_s: float
    answer: AnswerRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuestionResult:
        """The inverse of ``to_json``; KeyError/TypeError on a record of another shape."""
        answer = data.get("answer")
        return cls(
            id=data["id"],
            question=data["question"],
            lang=data["lang"],
            answerable=data["answerable"],
            gold=tuple(data["gold"]),
            gold_answer=data["gold_answer"],
            retrieved=tuple(Retrieved(**r) for r in data["retrieved"]),
            gold_rank=data["gold_rank"],
            scores=dict(data["scores"]),
            latency_s=data["latency_s"],
            answer=None if answer is None else _answer(answer),
        )


def _answer(data: Mapping[str, Any]) -> AnswerRecord:
    return AnswerRecord(
        text=data["text"],
        refused=data["refused"],
        unsupported=data["unsupported"],
        lang=data["lang"],
        citations=tuple(data.get("citations", ())),
        timings=dict(data.get("timings", {})),
        refusal_score=data.get("refusal_score"),
        extracted=data.get("extracted", False),
    )


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run.

    Args:
        out_dir: where results.jsonl and results.json were written.
        config: how the run was made (question set, k, retrieval_only, engine...).
        results: one per question, in question-set order.
        summary: scope ("all", "en", "es"...) -> metric -> value (see ``summary.summarize``).
        problems: question-set rows that were skipped, with the reason.
        resumed: how many results came from an earlier, interrupted run.
    """

    out_dir: Path
    config: Mapping[str, Any]
    results: tuple[QuestionResult, ...]
    summary: Mapping[str, Mapping[str, float | int | None]]
    problems: tuple[str, ...] = ()
    resumed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "config": dict(self.config),
            "summary": {scope: dict(values) for scope, values in self.summary.items()},
            "problems": list(self.problems),
            "questions": [r.to_json() for r in self.results],
        }
