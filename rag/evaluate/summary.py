"""Per-question scores -> one summary per scope: all questions, then each language.

A metric's mean is taken over the questions it applies to (retrieval metrics over questions
with gold, F1 over questions with a gold answer...); ``n_<metric>`` says how many that was.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.evaluate.metrics import percentile, refusal_scores
from rag.evaluate.results import QuestionResult

RETRIEVAL = ("hit@1", "hit@5", "hit@10", "mrr", "ndcg@10")
ANSWER = ("f1", "rouge_l", "groundedness", "faithfulness", "citation_hit", "lang_match", "judge")
LOWER_IS_BETTER = frozenset({"false_refusal"})  # answerable questions refused: the headline
_QUALITY = ("mrr", "f1", "citation_hit", "refusal_correct", "groundedness")
Summary = dict[str, float | int | None]


def summarize(results: Sequence[QuestionResult]) -> dict[str, Summary]:
    """``{"all": {...}, "en": {...}, ...}``; languages sorted, "all" first.

    >>> summarize([])["all"]["n"]
    0
    """
    scopes = {"all": list(results)}
    for lang in sorted({r.lang for r in results}):
        scopes[lang] = [r for r in results if r.lang == lang]
    return {scope: _summarize_scope(items) for scope, items in scopes.items()}


def metric_names(summary: Summary) -> list[str]:
    """The metrics present in a summary, in display order (counts left out)."""
    order = ["false_refusal", *RETRIEVAL, *[m for m in summary if m.startswith("recall@")], *ANSWER]
    order += ["refusal_precision", "refusal_recall", "extracted"]
    order += ["latency_p50", "latency_p95", "latency_first_token_p50", "latency_first_token_p95"]
    return [m for m in order if m in summary]


def _summarize_scope(results: Sequence[QuestionResult]) -> Summary:
    out: Summary = {
        "n": len(results),
        "n_answerable": sum(r.answerable for r in results),
        "n_unanswerable": sum(not r.answerable for r in results),
    }
    names = {name for r in results for name in r.scores}
    recall = sorted(n for n in names if n.startswith("recall@"))
    for name in [*RETRIEVAL, *recall, *ANSWER]:
        values = [r.scores[name] for r in results if r.scores.get(name) is not None]
        if name in names:
            out[name] = sum(values) / len(values) if values else None
            out[f"n_{name}"] = len(values)
    answered = [r for r in results if r.answer is not None]
    if answered:
        out.update(refusal_scores([r.answerable for r in answered], [r.answer.refused for r in answered]))
        spoken = [r for r in answered if not r.answer.refused]
        # Answers quoting a passage because the model refused after an "answer" decision.
        out["extracted"] = sum(r.answer.extracted for r in spoken) / len(spoken) if spoken else None
        # Seconds to the first streamed piece, where the model read the prompt (not retrieval's gate).
        timings = [r.answer.timings for r in answered if r.answer.timings.get("prompt_tokens")]
        firsts = [t["first_token"] for t in timings if t.get("first_token") is not None]
        if firsts:
            out["latency_first_token_p50"] = percentile(firsts, 50)
            out["latency_first_token_p95"] = percentile(firsts, 95)
    latencies = [r.latency_s for r in results]
    out["latency_p50"] = percentile(latencies, 50)
    out["latency_p95"] = percentile(latencies, 95)
    return out


def quality(result: QuestionResult) -> float | None:
    """One number per question for ranking best to worst: the mean of its rank, answer and
    refusal scores (those that apply); None when none does."""
    values = [v for name in _QUALITY if (v := result.scores.get(name)) is not None]
    return sum(values) / len(values) if values else None
