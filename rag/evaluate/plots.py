"""The report's three plots as PNG bytes: metric bars per language, gold rank, latency.

Uses matplotlib's object API (``Figure`` + Agg canvas), never ``pyplot``, so no global figure
state and no display is needed. Each function returns the PNG; writing it is the caller's job.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rag.evaluate.metrics import percentile
from rag.evaluate.results import QuestionResult
from rag.evaluate.summary import LOWER_IS_BETTER, metric_names

_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
_DPI = 110


def metric_bars(summary: Mapping[str, Mapping[str, float | int | None]]) -> bytes:
    """Grouped bars: each 0..1 metric, one bar per scope ("all", then each language)."""
    scopes = list(summary)
    names = [m for m in metric_names(summary["all"]) if not m.startswith("latency")]
    fig = Figure(figsize=(max(7.0, 0.9 * len(names) + 2), 4.4))
    ax = fig.add_subplot()
    width = 0.8 / max(len(scopes), 1)
    for i, scope in enumerate(scopes):
        values = [summary[scope].get(m) for m in names]
        xs = [j + (i - (len(scopes) - 1) / 2) * width for j in range(len(names))]
        label = f"{scope} (n={summary[scope].get('n', 0)})"
        bars = ax.bar(xs, [v or 0.0 for v in values], width, label=label, color=_color(i))
        for bar, value in zip(bars, values, strict=True):
            text = "n/a" if value is None else f"{value:.2f}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
                xytext=(0, 2),
                textcoords="offset points",
            )
    labels = [f"{m} (lower is better)" if m in LOWER_IS_BETTER else m for m in names]
    ax.set_xticks(range(len(names)), labels, rotation=30, ha="right")
    ax.set_ylim(0, 1.2)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("score (higher is better unless marked)")
    ax.set_title("Metrics per language", pad=22)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8, ncols=len(scopes), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def rank_histogram(results: Sequence[QuestionResult], k: int) -> bytes:
    """How many questions found their first gold passage at each rank, or not in the top k."""
    scored = [r for r in results if r.answerable and r.gold]
    langs = sorted({r.lang for r in scored})
    labels = [str(i) for i in range(1, k + 1)] + ["not found"]
    fig = Figure(figsize=(max(6.0, 0.45 * len(labels) + 2), 3.8))
    ax = fig.add_subplot()
    width = 0.8 / max(len(langs), 1)
    for i, lang in enumerate(langs):
        ranks = [r.gold_rank for r in scored if r.lang == lang]
        counts = [sum(rank == j for rank in ranks) for j in range(1, k + 1)]
        counts.append(sum(rank is None for rank in ranks))
        xs = [j + (i - (len(langs) - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, counts, width, label=f"{lang} (n={len(ranks)})", color=_color(i + 1))
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("rank of the first gold passage")
    ax.set_ylabel("questions")
    ax.set_title("Where the gold passage was retrieved")
    ax.yaxis.get_major_locator().set_params(integer=True)
    if langs:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def latency_histogram(results: Sequence[QuestionResult], what: str = "answer") -> bytes:
    """Seconds per question, per language, with the overall median and 95th percentile.

    ``what`` names what was timed ("retrieval" or "answer") in the title.
    """
    langs = sorted({r.lang for r in results})
    fig = Figure(figsize=(7.0, 3.8))
    ax = fig.add_subplot()
    data = [[r.latency_s for r in results if r.lang == lang] for lang in langs]
    if any(data):
        ax.hist(
            data,
            bins=20,
            stacked=True,
            color=[_color(i + 1) for i in range(len(langs))],
            label=[f"{lang} (n={len(d)})" for lang, d in zip(langs, data, strict=True)],
        )
        everything = [r.latency_s for r in results]
        for q, style in ((50, "--"), (95, ":")):
            value = percentile(everything, q)
            ax.axvline(value, color="black", linestyle=style, linewidth=1, label=f"p{q} {value:.2f}s")
        ax.legend(fontsize=8)
    ax.set_xlabel("seconds per question")
    ax.set_ylabel("questions")
    ax.set_title(f"Latency per question ({what})")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
