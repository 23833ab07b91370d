"""Calibrate the model-side refusal: the generator's probability of starting with the refusal sentence.

Questions about the right product that its manual does not answer (price, Bluetooth, warranty)
pass retrieval's relevance gate, and the 0.5B model then invents an answer. This bench measures,
for each question, what the engine measures before decoding (``Engine.prompt`` then
``TransformersGenerator.continuation_probability`` of the refusal sentence) and chooses a
threshold per language.

Split, so the figure reported is not the one tuned on:
- calibration: ``bench/refusal_questions.jsonl`` (written for this: 20 in-domain unanswerable
  questions, en/es, each checked against the corpus text, and 20 answerable ones about other
  pages than ``corpus/questions.jsonl`` asks about) + the odd-numbered answerable questions of
  ``corpus/questions.jsonl``;
- held out: the unanswerable questions of ``corpus/questions.jsonl`` + its even-numbered
  answerable ones.
The threshold chosen per language maximises (unanswerable refused + answerable kept) / 2 on the
calibration half, keeping at least ``--min-kept`` (0.8) of its answerable questions; ties go to
the higher threshold (fewer refusals). The guard is loose on purpose: a refusal still shows the
closest passages, so a wrong refusal costs the reader less than an invented answer. Compared in the same run: retrieval's gate alone, and the
model's own refusal (probability >= 0.5, when greedy decoding must start with the refusal).

    python bench/calibrate_refusal.py --index ~/.local/share/docqa/index   # an index of corpus/
    python bench/calibrate_refusal.py --rows bench/results/calibrate_refusal.json --min-kept 0.9
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from pathlib import Path

from ingest.settings import load_settings
from rag.engine import open_engine
from rag.refusal import min_relevance_for, refusal, refusal_threshold, relevance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
OWN_REFUSAL = 0.5  # above it, greedy decoding starts with the refusal sentence's first token


def _questions() -> list[dict]:
    def read(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]

    rows = []
    for q in read(ROOT / "bench" / "refusal_questions.jsonl"):
        rows.append(q | {"answerable": q.get("answerable", False), "split": "calibration"})
    for q in read(ROOT / "corpus" / "questions.jsonl"):
        answerable = q.get("answerable", True)
        odd = answerable and int(q["id"].rsplit("-", 1)[1]) % 2 == 1
        rows.append(q | {"answerable": answerable, "split": "calibration" if odd else "held-out"})
    return rows


def _rates(rows: list[dict], refuse) -> dict:
    pos = [r for r in rows if r["answerable"]]
    neg = [r for r in rows if not r["answerable"]]
    kept = sum(not refuse(r) for r in pos)
    refused = sum(refuse(r) for r in neg)
    return {
        "answerable_kept": f"{kept}/{len(pos)}",
        "unanswerable_refused": f"{refused}/{len(neg)}",
        "balanced": round((kept / max(len(pos), 1) + refused / max(len(neg), 1)) / 2, 3),
    }


def _refused(row: dict, threshold: float) -> bool:
    return row["gated"] or (row["probability"] or 0.0) >= threshold


def _choose(rows: list[dict], min_kept: float) -> float:
    """The threshold with the best balanced accuracy on ``rows`` (see the module docstring)."""
    scores = sorted({r["probability"] for r in rows if r["probability"] is not None and r["probability"] > 0})
    # Between each two neighbouring scores (geometric middle: they spread over decades), so the
    # boundary does not sit on a calibration question.
    candidates = [round(math.sqrt(a * b), 4) for a, b in itertools.pairwise(scores)] + [1.0]
    pos = [r for r in rows if r["answerable"]]
    neg = [r for r in rows if not r["answerable"]]
    best, best_key = 1.0, (-1.0, 0.0)
    for t in candidates:
        kept = sum(not _refused(r, t) for r in pos) / max(len(pos), 1)
        refused = sum(_refused(r, t) for r in neg) / max(len(neg), 1)
        if kept >= min_kept and ((kept + refused) / 2, t) > best_key:
            best, best_key = t, ((kept + refused) / 2, t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="an index of corpus/ (to measure)")
    parser.add_argument("--rows", type=Path, help="a results JSON: choose again from its measured rows")
    parser.add_argument("--min-kept", type=float, default=0.8)
    args = parser.parse_args()
    if not (args.index or args.rows):
        parser.error("give --index (measure) or --rows (choose from a previous run)")
    settings = load_settings(**({"index_dir": args.index} if args.index else {}))
    report = json.loads(args.rows.read_text()) if args.rows else _measure(settings)
    rows = report["rows"]
    report |= {"min_kept": args.min_kept, "languages": {}}
    for lang in sorted({r["lang"] for r in rows}):
        cal = [r for r in rows if r["lang"] == lang and r["split"] == "calibration"]
        held = [r for r in rows if r["lang"] == lang and r["split"] == "held-out"]
        chosen = _choose(cal, args.min_kept)
        product = refusal_threshold(settings, report["generator"], lang)
        policies = {
            "retrieval gate only": lambda r: r["gated"],
            "gate + model's own refusal (p >= 0.5)": lambda r: _refused(r, OWN_REFUSAL),
            f"gate + chosen threshold {chosen}": lambda r, t=chosen: _refused(r, t),
            f"gate + product threshold {product}": lambda r, t=product: _refused(r, t),
        }
        report["languages"][lang] = {
            "chosen_threshold": chosen,
            "product_threshold": product,
            "calibration": {name: _rates(cal, f) for name, f in policies.items()},
            "held_out": {name: _rates(held, f) for name, f in policies.items()},
        }
    print(json.dumps(report["languages"], indent=1, ensure_ascii=False))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "calibrate_refusal.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    _plot(rows, report, RESULTS / "calibrate_refusal.png")
    print(f"wrote {out}")


def _measure(settings) -> dict:
    """Each question's relevance and, past retrieval's gate, its refusal probability."""
    rows = []
    started = time.perf_counter()
    with open_engine(settings) as engine:
        gate = min_relevance_for(settings, engine.embedder.name)
        generator = engine.generator
        for q in _questions():
            passages = engine.retrieve(q["question"])
            row = {k: q[k] for k in ("id", "lang", "question", "answerable", "split")}
            row["relevance"] = round(relevance(passages), 4)
            row["gated"] = row["relevance"] < gate
            row["probability"] = None
            if not row["gated"]:
                _, messages = engine.prompt(q["question"], passages, language=q["lang"])
                row["probability"] = generator.continuation_probability(messages, refusal(q["lang"]))
            rows.append(row)
            p = "   -  " if row["probability"] is None else f"{row['probability']:.4f}"
            kind = "answerable  " if row["answerable"] else "UNANSWERABLE"
            print(f"{row['split']:11} {kind} {row['id']:10} rel {row['relevance']:.3f}  p {p}", flush=True)
    return {
        "generator": generator.name,
        "embedder": engine.embedder.name,
        "relevance_gate": gate,
        "seconds": round(time.perf_counter() - started, 1),
        "loadavg": os.getloadavg(),
        "rows": rows,
    }


def _plot(rows: list[dict], report: dict, path: Path) -> None:
    """Each question's refusal probability by language and kind, with the thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = sorted(report["languages"])
    fig, axes = plt.subplots(1, len(langs), figsize=(5 * len(langs), 3.6), sharey=True)
    for ax, lang in zip(list(getattr(axes, "flat", [axes])), langs, strict=True):
        for x, (label, answerable) in enumerate((("answerable", True), ("unanswerable", False))):
            for split, marker in (("calibration", "o"), ("held-out", "^")):
                ys = [
                    r["probability"]
                    for r in rows
                    if r["lang"] == lang
                    and r["answerable"] == answerable
                    and r["split"] == split
                    and r["probability"] is not None
                ]
                jitter = [x + (0.12 if split == "held-out" else -0.12)] * len(ys)
                ax.scatter(jitter, ys, marker=marker, alpha=0.7, label=f"{label}, {split}")
        t = report["languages"][lang]["product_threshold"]
        ax.axhline(t, color="red", linestyle="--", label=f"threshold {t}")
        ax.set_yscale("log")
        ax.set_xticks([0, 1], ["answerable", "unanswerable\n(in-domain)"])
        ax.set_title(f"{lang}: P(refusal sentence), {report['generator']}")
    axes_list = list(getattr(axes, "flat", [axes]))
    axes_list[0].set_ylabel("probability (log)")
    axes_list[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
