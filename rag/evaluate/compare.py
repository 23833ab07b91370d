"""Two finished runs side by side: every metric with its difference, and the questions that moved.

Runs are read from their ``results.json`` (or the folder holding it). Questions are paired by id;
a question "improved" when its quality (``summary.quality``: rank, answer and refusal scores)
went up. This module only reads and compares; it runs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.errors import DocqaError
from rag.evaluate.report import format_value
from rag.evaluate.results import QuestionResult
from rag.evaluate.summary import metric_names, quality

SHOWN = 10  # questions listed per direction


@dataclass(frozen=True, slots=True)
class MetricDelta:
    scope: str
    metric: str
    a: float | int | None
    b: float | int | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True, slots=True)
class QuestionDelta:
    id: str
    question: str
    lang: str
    a_rank: int | None
    b_rank: int | None
    a_quality: float
    b_quality: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """Run B against run A: metric rows, moved questions, settings that differ."""

    a: str
    b: str
    metrics: tuple[MetricDelta, ...]
    improved: tuple[QuestionDelta, ...]
    regressed: tuple[QuestionDelta, ...]
    settings: tuple[tuple[str, Any, Any], ...]
    paired: int


def load_run(path: Path) -> dict[str, Any]:
    """A run's results.json, given the file or its folder.

    Raises:
        DocqaError: nothing readable there.
    """
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DocqaError(f"cannot read run {file}: {err}; give a run folder made by 'docqa eval'") from None
    if not isinstance(data, dict) or "summary" not in data or "questions" not in data:
        raise DocqaError(f"{file} is not a docqa eval results.json")
    data["_label"] = str(path)
    return data


def compare_runs(a: Mapping[str, Any], b: Mapping[str, Any]) -> Comparison:
    """Compare two loaded runs (see ``load_run``)."""
    rows = []
    for scope in [s for s in a["summary"] if s in b["summary"]]:
        sa, sb = a["summary"][scope], b["summary"][scope]
        names = metric_names(sa) + [m for m in metric_names(sb) if m not in sa]
        rows += [MetricDelta(scope, m, sa.get(m), sb.get(m)) for m in ["n", *names]]
    qa = {q["id"]: QuestionResult.from_json(q) for q in a["questions"]}
    qb = {q["id"]: QuestionResult.from_json(q) for q in b["questions"]}
    moved = []
    for qid in [i for i in qa if i in qb]:
        x, y = quality(qa[qid]), quality(qb[qid])
        if x is not None and y is not None and x != y:
            r = qb[qid]
            moved.append(QuestionDelta(qid, r.question, r.lang, qa[qid].gold_rank, r.gold_rank, x, y))
    moved.sort(key=lambda d: d.b_quality - d.a_quality)
    config_a, config_b = _flat(a.get("config", {})), _flat(b.get("config", {}))
    settings = tuple(
        (key, config_a.get(key), config_b.get(key))
        for key in sorted(set(config_a) | set(config_b))
        if config_a.get(key) != config_b.get(key) and key != "signature"
    )
    return Comparison(
        a=a.get("_label", "A"),
        b=b.get("_label", "B"),
        metrics=tuple(rows),
        improved=tuple(d for d in reversed(moved) if d.b_quality > d.a_quality),
        regressed=tuple(d for d in moved if d.b_quality < d.a_quality),
        settings=settings,
        paired=sum(i in qb for i in qa),
    )


def format_comparison(c: Comparison) -> str:
    """The comparison as plain text for the console."""
    lines = [f"A: {c.a}", f"B: {c.b}", f"questions in both: {c.paired}"]
    lines += [f"  {key}: {va!r} -> {vb!r}" for key, va, vb in c.settings]
    width = max([len(m.metric) for m in c.metrics] + [6])
    lines.append(f"\n{'scope':<6} {'metric':<{width}} {'A':>9} {'B':>9} {'B-A':>8}")
    for m in c.metrics:
        delta = "" if m.delta is None or m.metric == "n" else f"{m.delta:+.3f}"
        if m.delta is not None and m.metric.startswith("latency"):
            delta = f"{m.delta:+.2f}s"
        lines.append(
            f"{m.scope:<6} {m.metric:<{width}} {format_value(m.metric, m.a):>9} "
            f"{format_value(m.metric, m.b):>9} {delta:>8}"
        )
    for title, items in (("improved", c.improved), ("regressed", c.regressed)):
        lines.append(f"\n{title} in B: {len(items)} questions")
        for d in items[:SHOWN]:
            ranks = f"rank {_rank(d.a_rank)} -> {_rank(d.b_rank)}"
            lines.append(
                f"  {d.id} [{d.lang}] {ranks}, quality {d.a_quality:.2f} -> {d.b_quality:.2f}: "
                f"{d.question[:70]}"
            )
    return "\n".join(lines)


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"engine": {"embedder": "x"}}`` -> ``{"engine.embedder": "x"}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
