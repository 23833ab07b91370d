"""A run -> a console table, PNG plots and one self-contained ``report.html``.

The HTML embeds its plots as base64 PNG and its style inline: it loads nothing from anywhere, so
it can be mailed or archived alone. The PNGs are also written beside it. This module does not
compute metrics (``summary.py`` does) and does not run anything.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from rag.evaluate import plots
from rag.evaluate.results import QuestionResult, RunResult
from rag.evaluate.summary import metric_names, quality

WORST = 10
_STYLE = """body{font:14px system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;
vertical-align:top}th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:1em 0}.small{font-size:12px;color:#555}"""


def format_value(name: str, value: float | int | None) -> str:
    """``0.8123`` -> ``"0.812"``; latencies in seconds; None -> ``"-"``."""
    if value is None:
        return "-"
    if name.startswith("latency"):
        return f"{value:.2f}s"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_table(summary: Mapping[str, Mapping[str, float | int | None]]) -> str:
    """The summary as a plain-text table: one row per metric, one column per scope."""
    scopes = list(summary)
    rows = [["metric", *scopes], ["questions", *[str(summary[s]["n"]) for s in scopes]]]
    rows.append(["answerable", *[str(summary[s]["n_answerable"]) for s in scopes]])
    for name in metric_names(summary["all"]):
        rows.append([name, *[format_value(name, summary[s].get(name)) for s in scopes]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def worst_questions(results: Sequence[QuestionResult], n: int = WORST) -> list[QuestionResult]:
    """The ``n`` questions with the lowest mean of their rank, answer and refusal scores."""
    scored = [(q, r) for r in results if (q := quality(r)) is not None]
    return [r for _, r in sorted(scored, key=lambda item: item[0])[:n]]


def write_report(run: RunResult, out_dir: Path | None = None) -> Path:
    """Write report.html and the three PNGs to ``out_dir`` (default: the run's); return the HTML."""
    out_dir = Path(out_dir or run.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    k = int(run.config.get("k", 10))
    images = {
        "metrics_by_language.png": plots.metric_bars(run.summary),
        "gold_rank.png": plots.rank_histogram(run.results, k),
        "latency.png": plots.latency_histogram(
            run.results, "retrieval" if run.config.get("retrieval_only") else "whole answer"
        ),
    }
    for name, data in images.items():
        (out_dir / name).write_bytes(data)
    path = out_dir / "report.html"
    path.write_text(render_html(run, images), encoding="utf-8")
    return path


def render_html(run: RunResult, images: Mapping[str, bytes]) -> str:
    """The report page with ``images`` (name -> PNG bytes) embedded."""
    config = run.config
    title = f"docqa eval: {Path(str(config.get('questions') or 'questions')).name}"
    mode = "retrieval only" if config.get("retrieval_only") else "retrieval and answers"
    engine = ", ".join(f"{k}={v}" for k, v in dict(config.get("engine", {})).items())
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>",
        f"<p class='small'>{_e(mode)}; k={config.get('k')}; {len(run.results)} questions; {_e(engine)}</p>",
        "<h2>Metrics</h2>",
        _summary_table(run.summary),
    ]
    for name, data in images.items():
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(f"<img alt='{_e(name)}' src='data:image/png;base64,{encoded}'>")
    parts += ["<h2>Worst questions</h2>", _worst_table(worst_questions(run.results))]
    if run.problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in run.problems)
        parts.append(f"<h2>Skipped rows</h2><ul class='small'>{items}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary_table(summary: Mapping[str, Mapping[str, float | int | None]]) -> str:
    scopes = list(summary)
    head = "".join(f"<th>{_e(s)}</th>" for s in scopes)
    rows = [f"<tr><th>metric</th>{head}</tr>"]
    for name in ["n", "n_answerable", *metric_names(summary["all"])]:
        cells = "".join(f"<td class='n'>{format_value(name, summary[s].get(name))}</td>" for s in scopes)
        rows.append(f"<tr><td>{_e(name)}</td>{cells}</tr>")
    return f"<table>{''.join(rows)}</table>"


def _worst_table(results: Sequence[QuestionResult]) -> str:
    if not results:
        return "<p>No scored questions.</p>"
    rows = [
        "<tr><th>id</th><th>lang</th><th>question</th><th>gold</th><th>gold rank</th>"
        "<th>top passage</th><th>answer</th></tr>"
    ]
    for r in results:
        top = r.retrieved[0].location if r.retrieved else "-"
        answer = "-" if r.answer is None else ("(refused) " if r.answer.refused else "") + r.answer.text
        expected = "unanswerable" if not r.answerable else "; ".join(r.gold) or "-"
        rank = "-" if r.gold_rank is None else str(r.gold_rank)
        rows.append(
            f"<tr><td>{_e(r.id)}</td><td>{_e(r.lang)}</td><td>{_e(r.question)}</td>"
            f"<td class='small'>{_e(expected)}</td><td class='n'>{rank}</td>"
            f"<td class='small'>{_e(top)}</td><td class='small'>{_e(answer[:400])}</td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
