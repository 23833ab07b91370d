"""Scripted evaluation: question sets -> retrieval and answer metrics -> reports.

Judge-free and deterministic: every metric is computed from the gold labels and the engine's
output (see ``metrics.py``). The pieces, each usable alone:

- ``questions.load_questions(path)``: JSONL, CSV or BEIR -> ``QuestionSet`` (bad rows reported).
- ``run.evaluate(questions, engine, out_dir=...)``: runs, resumes, writes results.jsonl/.json.
- ``report.write_report(run)``: report.html with embedded plots, plus the PNGs;
  ``report.format_table(run.summary)`` for the console.
- ``compare.compare_runs(load_run(a), load_run(b))``: two runs side by side.
- ``judge.LLMJudge(generator)``: an optional LLM grade of each answer (off by default).

Example:
    >>> questions = load_questions(Path("corpus/questions.jsonl"))  # doctest: +SKIP
    >>> run = evaluate(questions, engine, out_dir=Path("out/eval/run"))  # doctest: +SKIP
"""

from rag.evaluate.gold import GoldRef, parse_gold
from rag.evaluate.questions import Question, QuestionSet, load_questions
from rag.evaluate.results import QuestionResult, RunResult
from rag.evaluate.run import EvalEngine, evaluate
from rag.evaluate.summary import summarize

__all__ = [
    "EvalEngine",
    "GoldRef",
    "Question",
    "QuestionResult",
    "QuestionSet",
    "RunResult",
    "evaluate",
    "load_questions",
    "parse_gold",
    "summarize",
]
