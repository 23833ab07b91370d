"""One question, its retrieved passages and (optionally) its answer -> a ``QuestionResult``.

Pure: no engine, no files. Retrieval metrics apply to answerable questions with gold; F1 and
ROUGE-L to answerable questions with a gold answer; citation hit, groundedness (against the
cited passages) and faithfulness (against all retrieved passages) to answers that were not
refusals; language match to answers whose language can be told.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ingest.records import Answer, Citation, Passage
from rag.evaluate import metrics
from rag.evaluate.gold import matches, relevance
from rag.evaluate.questions import Question
from rag.evaluate.results import SNIPPET_CHARS, AnswerRecord, QuestionResult, Retrieved

_MARKER = re.compile(r"\[\d+\]")


def score_question(
    question: Question,
    passages: Sequence[Passage],
    *,
    k: int,
    latency_s: float,
    answer: Answer | None = None,
    detect: Callable[[str], str],
    judge: float | None = None,
) -> QuestionResult:
    """Score one question.

    Args:
        question: the question with its gold.
        passages: what retrieval returned, best first (at most ``k`` are scored).
        k: retrieval depth, for recall@k.
        latency_s: seconds the engine took (retrieval, or the whole answer).
        answer: the engine's answer; None in retrieval-only runs.
        detect: language detector for the answer text.
        judge: the LLM judge's grade (0..1) of the answer, when a judge ran.
    """
    passages = list(passages[:k])
    relevant = relevance(question.gold, passages) if question.gold else [False] * len(passages)
    scores: dict[str, float | None] = {}
    has_gold = question.answerable and bool(question.gold)
    if has_gold:
        scores.update(metrics.retrieval_scores(relevant, len(question.gold), k))
    record = None
    if answer is not None:
        record = _record(answer, detect)
        scores.update(_answer_scores(question, answer, record))
        if judge is not None:
            scores["judge"] = judge
    return QuestionResult(
        id=question.id,
        question=question.question,
        lang=question.lang,
        answerable=question.answerable,
        gold=tuple(str(g) for g in question.gold),
        gold_answer=question.answer,
        retrieved=tuple(_retrieved(p, r) for p, r in zip(passages, relevant, strict=True)),
        gold_rank=metrics.gold_rank(relevant) if has_gold else None,
        scores=scores,
        latency_s=latency_s,
        answer=record,
    )


def _answer_scores(question: Question, answer: Answer, record: AnswerRecord) -> dict[str, float | None]:
    scores: dict[str, float | None] = {"refusal_correct": float(answer.refused != question.answerable)}
    known = question.lang not in ("", "und") and record.lang != "und"
    scores["lang_match"] = float(record.lang == question.lang) if known else None
    if question.answerable and question.answer:
        scores["f1"] = metrics.token_f1(answer.text, question.answer)
        scores["rouge_l"] = metrics.rouge_l(answer.text, question.answer)
    if not answer.refused:
        cited = {c.number: _cited_passage(c, answer) for c in answer.citations}
        scores["groundedness"] = metrics.groundedness(answer.text, {n: p.text for n, p in cited.items()})
        # The same check against every retrieved passage, markers ignored: tells an answer that is
        # faithful but uncited (a citation problem) from one that is made up.
        everything = {i: p.text for i, p in enumerate(answer.passages, start=1)}
        scores["faithfulness"] = metrics.groundedness(_MARKER.sub(" ", answer.text), everything)
        if question.answerable and question.gold:
            hit = any(matches(g, p) for g in question.gold for p in cited.values())
            scores["citation_hit"] = float(hit)
    return scores


def _cited_passage(citation: Citation, answer: Answer) -> Passage:
    """The passage a citation points to; built from the citation when the answer lacks it."""
    for passage in answer.passages:
        if passage.chunk_id == citation.chunk_id:
            return passage
    return Passage(
        chunk_id=citation.chunk_id,
        source=citation.source,
        text=citation.quote,
        page=citation.page,
        heading=citation.heading,
        lang="und",
        score=0.0,
        rank=citation.number,
    )


def _record(answer: Answer, detect: Callable[[str], str]) -> AnswerRecord:
    text = _MARKER.sub(" ", answer.text).strip()
    t = answer.timings
    return AnswerRecord(
        text=answer.text,
        refused=answer.refused,
        unsupported=answer.unsupported,
        refusal_score=answer.refusal_score,
        extracted=answer.extracted,
        lang=detect(text) if text else "und",
        citations=tuple(
            {"number": c.number, "chunk_id": c.chunk_id, "source": c.source, "page": c.page}
            for c in answer.citations
        ),
        timings={
            "retrieve": t.retrieve,
            "prompt": t.prompt,
            "first_token": t.first_token,
            "total": t.total,
            "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens,
        },
    )


def _retrieved(passage: Passage, relevant: bool) -> Retrieved:
    return Retrieved(
        chunk_id=passage.chunk_id,
        source=passage.source,
        page=passage.page,
        heading=passage.heading,
        score=float(passage.score),
        relevant=relevant,
        snippet=" ".join(passage.text.split())[:SNIPPET_CHARS],
    )
