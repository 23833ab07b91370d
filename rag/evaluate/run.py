"""Run a question set through an engine, one question at a time, and keep every result.

Each finished question is appended to ``OUT/results.jsonl`` at once, so an interrupted run
resumes where it stopped when started again with the same ``out_dir`` (see ``runfiles.py``). At
the end ``results.json`` holds the configuration, the summary per language and every question.
Reports (HTML, plots) are ``report.py``'s job.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ingest.errors import DocqaError, EmptyScope
from ingest.records import Answer, Passage, Scope
from rag.evaluate.questions import Question, QuestionSet
from rag.evaluate.results import QuestionResult, RunResult
from rag.evaluate.runfiles import PARTIAL, RESULTS, prepare, write_json
from rag.evaluate.score import score_question
from rag.evaluate.summary import summarize


class EvalEngine(Protocol):
    """What an evaluation needs of a query engine (``rag.engine.Engine`` has both); ``scope`` is
    the question's own (``Question.scope``), None for the whole index."""

    def retrieve(
        self, question: str, *, k: int | None = None, scope: Scope | None = None
    ) -> list[Passage]: ...

    def ask(self, question: str, *, k: int | None = None, scope: Scope | None = None) -> Answer: ...


def evaluate(
    questions: QuestionSet | Sequence[Question],
    engine: EvalEngine,
    *,
    out_dir: Path,
    retrieval_only: bool = False,
    k: int = 10,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    resume: bool = True,
    progress: Callable[[int, int], None] | None = None,
    detect: Callable[[str], str] | None = None,
    describe: Mapping[str, Any] | None = None,
    judge: Callable[[Question, str], float | None] | None = None,
) -> RunResult:
    """Evaluate ``questions`` against ``engine`` and write the results under ``out_dir``.

    Args:
        questions: the question set (or a plain sequence of questions).
        engine: an object with ``retrieve`` and ``ask``.
        out_dir: where results.jsonl, run.json and results.json go (created if missing).
        retrieval_only: score retrieval only (no generation: fast).
        k: passages retrieved per question for the retrieval metrics.
        limit: evaluate only the first ``limit`` questions (after sampling).
        sample: evaluate a random sample of this many questions, drawn with ``seed``.
        resume: reuse results of an interrupted run in ``out_dir``; False starts over.
        progress: called with (done, total) at the start and after each question.
        detect: language detector for answers (default ``ingest.lang.detect_language``).
        describe: what the engine is (index, embedder, generator...), recorded in the config.
        judge: optional grader of answers against gold answers (see ``judge.LLMJudge``); off
            by default, and never called in retrieval-only runs.

    Raises:
        DocqaError: ``out_dir`` holds a different run, or ``k``/``limit``/``sample`` is bad.
        EmptyScope: a question's scope matches nothing in the index (the questions before it
            are kept for a resumed run).
    """
    if detect is None:
        from ingest.lang import detect_language as detect
    source = questions.source if isinstance(questions, QuestionSet) else ""
    problems = questions.problems if isinstance(questions, QuestionSet) else ()
    pool = questions.questions if isinstance(questions, QuestionSet) else tuple(questions)
    chosen = select(pool, limit=limit, sample=sample, seed=seed)
    config = {
        "questions": source,
        "n_questions": len(chosen),
        "retrieval_only": retrieval_only,
        "k": k,
        "limit": limit,
        "sample": sample,
        "seed": seed,
        "engine": dict(describe or {}),
        "judge": getattr(judge, "name", "judge") if judge else None,
    }
    config["signature"] = _signature(chosen, config)
    out_dir = Path(out_dir)
    done = prepare(out_dir, config, resume)
    resumed = count = sum(q.id in done for q in chosen)
    if progress:
        progress(count, len(chosen))
    with (out_dir / PARTIAL).open("a", encoding="utf-8") as sink:
        for question in chosen:
            if question.id in done:
                continue
            result = _run_one(
                question, engine, k=k, retrieval_only=retrieval_only, detect=detect, judge=judge
            )
            sink.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
            sink.flush()
            done[question.id] = result
            count += 1
            if progress:
                progress(count, len(chosen))
    results = tuple(done[q.id] for q in chosen)
    run = RunResult(out_dir, config, results, summarize(results), tuple(problems), resumed)
    write_json(out_dir / RESULTS, run.to_json())
    return run


def select(
    questions: Sequence[Question], *, limit: int | None, sample: int | None, seed: int
) -> tuple[Question, ...]:
    """A seeded random sample (kept in set order), then the first ``limit``.

    Raises:
        DocqaError: ``limit`` or ``sample`` is below 1.
    """
    for name, value in (("limit", limit), ("sample", sample)):
        if value is not None and value < 1:
            raise DocqaError(f"bad --{name} {value}: use 1 or more")
    chosen = list(questions)
    if sample is not None and sample < len(chosen):
        keep = sorted(random.Random(seed).sample(range(len(chosen)), sample))
        chosen = [chosen[i] for i in keep]
    return tuple(chosen[:limit] if limit is not None else chosen)


def _run_one(
    question: Question,
    engine: EvalEngine,
    *,
    k: int,
    retrieval_only: bool,
    detect: Callable[[str], str],
    judge: Callable[[Question, str], float | None] | None,
) -> QuestionResult:
    start = time.perf_counter()
    try:
        passages = engine.retrieve(question.question, k=k, scope=question.scope)
    except EmptyScope as err:  # say which row to fix
        raise EmptyScope(f"question {question.id!r} (line {question.line}): {err}") from err
    latency = time.perf_counter() - start
    answer = grade = None
    if not retrieval_only:
        start = time.perf_counter()
        answer = engine.ask(question.question, scope=question.scope)
        latency = answer.timings.total or (time.perf_counter() - start)
        if judge and question.answerable and question.answer and not answer.refused:
            grade = judge(question, answer.text)
    return score_question(
        question, passages, k=k, latency_s=latency, answer=answer, detect=detect, judge=grade
    )


def _signature(questions: Sequence[Question], config: Mapping[str, Any]) -> str:
    """Hash of what makes two runs the same run: the questions and the settings."""
    payload = {
        "questions": [_question_key(q) for q in questions],
        "settings": [config["retrieval_only"], config["k"], config["engine"], config["judge"]],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _question_key(q: Question) -> list[Any]:
    """What makes a question the same question; a scope only when it has one (older runs resume)."""
    key: list[Any] = [q.id, q.question, q.answerable, [str(g) for g in q.gold]]
    return [*key, [q.scope.documents, q.scope.folders, q.scope.languages]] if q.scope else key
