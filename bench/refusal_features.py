"""Candidate signals and threshold rules for the refusal decision, leave-one-product-out.

Reads ``eval_lopo.py signals``'s ``signals.jsonl`` (with each question's retrieved passages) and
adds, through the engine's own retrieval and prompt (no decoding, no probe), signals the shipped
decision does not use: the share of the question's words the shown passages hold weighted by the
index's IDF, the IDF of the rarest question word they lack, and the best BM25 score. Then it fits
the decision (``rag.refusal_fit``'s gate and logistic regression) on four products and scores the
fifth, for each feature set and each rule for the threshold:

- ``balanced``: the shipped rule, the mean of "answerable answered" and "unanswerable refused";
- ``errors``: fewest wrong decisions, each question counting once (the dev set's mix decides);
- ``refused>=X``: the most answerable questions answered while refusing at least X of the
  unanswerable ones on the four training products.

    python bench/eval_lopo.py build && python bench/eval_lopo.py signals   # once
    python bench/refusal_features.py      # -> results/refusal_features.json

Every figure is the mean over held-out products (and the worst product), as in ``eval_lopo.py fit``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import eval_lopo
import lopo_data

from rag.refusal_fit import _balanced_threshold, _gate, _logistic

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/work/lopo", help="eval_lopo.py's work folder")
    args = parser.parse_args(argv)
    work = Path(args.work)
    rows = [json.loads(line) for line in (work / "signals.jsonl").open()]
    extra = _extra_signals(work, rows)
    for r in rows:
        r.update(extra[r["key"]])
    report = {}
    for feature_name, features in FEATURE_SETS.items():
        for rule_name, rule in RULES.items():
            figures = _held_out(rows, features, rule)
            report[f"{feature_name} | {rule_name}"] = figures
            a, en, es = figures["all"], figures["en"], figures["es"]
            print(
                f"{feature_name:16s} {rule_name:14s} answered {a['answered']:.3f} (worst {a['answered_worst']:.3f})"
                f" refused {a['refused']:.3f} (worst {a['refused_worst']:.3f})"
                f" | en {en['answered']:.3f}/{en['refused']:.3f} es {es['answered']:.3f}/{es['refused']:.3f}"
                f" | cross-language answered {figures['cross_language_answered']:.3f}"
                f" | refused in-domain {figures['in-domain_refused']:.3f}"
                f" other-product {figures['other-product_refused']:.3f}"
            )
    out = {"command": "python bench/refusal_features.py " + " ".join(sys.argv[1:]), "questions": len(rows)}
    (RESULTS / "refusal_features.json").write_text(json.dumps(out | {"held_out": report}, indent=1) + "\n")


def _extra_signals(work: Path, rows: list[dict]) -> dict[str, dict]:
    """Per question: IDF-weighted overlap, the rarest missing word's IDF, the best BM25 score,
    the top 10 dense cosines (``signals.jsonl`` holds the ``top_k`` passages shown only).

    Cached in ``extra_signals.jsonl`` under ``work`` (retrieval only: a few minutes); a row of an
    earlier version, without a field, is measured again and appended (the last row counts)."""
    from ingest.lang import detect_language
    from ingest.lexical import _idf, tokens
    from rag.engine import check_question
    from rag.text import content_words

    path = work / "extra_signals.jsonl"
    done = {json.loads(line)["key"]: json.loads(line) for line in path.open()} if path.is_file() else {}
    todo = [r for r in rows if r["key"] not in done or "top_dense" not in done[r["key"]]]
    if todo:
        questions = {eval_lopo._key(q): q for q in lopo_data.questions()}
        models = eval_lopo._models(work)
        never = eval_lopo._never_refusing(models)
        engines = eval_lopo._engines(work, sorted({r["index"] for r in todo}), models, refusal_model=never)
        with path.open("a", encoding="utf-8") as out:
            for i, r in enumerate(todo, 1):
                engine = engines[r["index"]]
                question = check_question(questions[r["key"]].question)
                lang = detect_language(question)
                passages = engine.retrieve(question)
                shown, _ = engine.prompt(question, passages, language=lang if lang != "und" else "en")
                lexical = engine.index._lexical  # the store's own BM25 statistics
                words = sorted(set(tokens(" ".join(content_words(question)))))
                idf = {w: _idf(lexical._docs, lexical._df(w)) for w in words}
                seen = set().union(*(tokens(p.text) for p in shown)) if shown else set()
                total = sum(idf.values()) or 1.0
                row = {
                    "key": r["key"],
                    "idf_overlap": sum(v for w, v in idf.items() if w in seen) / total,
                    "max_missing_idf": max((v for w, v in idf.items() if w not in seen), default=0.0),
                    "top_lexical": max((p.lexical_score or 0.0 for p in passages), default=0.0),
                    "top_dense": [
                        round(float(score), 6)
                        for _, score in engine.index.search_dense(
                            engine.embedder.embed_queries([question])[0], 10
                        )
                    ],
                }
                out.write(json.dumps(row) + "\n")
                done[r["key"]] = row
                if i % 100 == 0:
                    print(f"extra signals {i}/{len(todo)}", file=sys.stderr, flush=True)
    return {k: {n: v for n, v in row.items() if n != "key"} for k, row in done.items()}


def _logit(p: float | None) -> float:
    p = 0.5 if p is None else min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _shipped(r: dict) -> list[float]:
    """``rag.refusal.RefusalSignals.vector``: relevance, overlap, logit, Spanish, Spanish x logit."""
    logit = _logit(r["probability"])
    spanish = 1.0 if r["answer_lang"] == "es" else 0.0
    return [r["relevance"], r["overlap"], logit, spanish, spanish * logit]


def _top_dense(r: dict) -> dict | None:
    scored = [p for p in r["passages"] if p["dense"] is not None]
    return max(scored, key=lambda p: p["dense"]) if scored else None


def _other_language(r: dict) -> float:
    """1 when the best dense passage is not in the answer's language (a translation to find)."""
    top = _top_dense(r)
    return 0.0 if top is None or top["lang"] == r["answer_lang"] else 1.0


def _second_dense(r: dict) -> float:
    scores = r["top_dense"]  # best first, 10 of them (the shown passages may be one)
    return scores[1] if len(scores) > 1 else 0.0


def _dense_profile(r: dict) -> tuple[float, float, float]:
    """Query-performance predictors of the retrieved list's cosines (top 10): how far the best
    stands above the rest (best minus the mean of the others), their spread relative to the best
    (NQC, Shtok et al. 2012), and their mean (a question near many chunks is on topic)."""
    scores = r["top_dense"]  # best first
    if not scores:
        return 0.0, 0.0, 0.0
    best, rest = scores[0], scores[1:] or scores[:1]
    return best - float(np.mean(rest)), float(np.std(scores)) / max(best, 1e-6), float(np.mean(scores))


FEATURE_SETS: dict[str, Callable[[dict], list[float]]] = {
    "shipped": _shipped,
    "+other language": lambda r: [*_shipped(r), _other_language(r)],
    "+Spanish x cos": lambda r: [*_shipped(r), (r["answer_lang"] == "es") * r["relevance"]],
    "+2nd cosine": lambda r: [*_shipped(r), _second_dense(r)],
    "IDF overlap": lambda r: [r["relevance"], r["idf_overlap"], *_shipped(r)[2:]],
    "+IDF overlap": lambda r: [*_shipped(r), r["idf_overlap"]],
    "+rarest missing": lambda r: [*_shipped(r), r["max_missing_idf"]],
    "+best BM25": lambda r: [*_shipped(r), math.log1p(r["top_lexical"])],
    "+peak": lambda r: [*_shipped(r), _dense_profile(r)[0]],
    "+NQC": lambda r: [*_shipped(r), _dense_profile(r)[1]],
    "+mean top 10": lambda r: [*_shipped(r), _dense_profile(r)[2]],
    "+all three": lambda r: [*_shipped(r), *_dense_profile(r)],
    "no Spanish terms": lambda r: _shipped(r)[:3],
}


def _fewest_errors(scores: np.ndarray, unanswerable: np.ndarray) -> float:
    cuts = np.concatenate([[0.0], np.unique(scores), [1.0]])
    errors = [((scores >= c) & ~unanswerable).sum() + ((scores < c) & unanswerable).sum() for c in cuts]
    return float(cuts[len(errors) - 1 - int(np.argmin(errors[::-1]))])  # ties: the higher cut


def _refusing_at_least(share: float) -> Callable[[np.ndarray, np.ndarray], float]:
    def rule(scores: np.ndarray, unanswerable: np.ndarray) -> float:
        best, answered = 0.5, -1.0
        for cut in np.concatenate([[0.0], np.unique(scores) + 1e-12, [1.0 + 1e-9]]):
            refused = ((scores >= cut) & unanswerable).sum() / max(unanswerable.sum(), 1)
            kept = ((scores < cut) & ~unanswerable).sum() / max((~unanswerable).sum(), 1)
            if refused >= share and kept > answered:
                best, answered = float(cut), kept
        return best

    return rule


RULES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "balanced": _balanced_threshold,
    "errors": _fewest_errors,
    "refused>=0.90": _refusing_at_least(0.90),
    "refused>=0.88": _refusing_at_least(0.88),
}


def _fit(train: list[dict], features, rule) -> Callable[[dict], bool]:
    """``rag.refusal_fit.fit_refusal_model``'s steps on any feature set and threshold rule."""
    relevance = np.array([r["relevance"] for r in train])
    unanswerable = np.array([not r["answerable"] for r in train])
    floor = _gate(relevance[~unanswerable])
    kept = relevance >= floor
    x = np.array([features(r) for r in train], dtype=np.float64)[kept]
    y = unanswerable[kept]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    weights, bias = _logistic((x - mean) / scale, y.astype(np.float64), 1.0)
    threshold = rule(1 / (1 + np.exp(-(((x - mean) / scale) @ weights + bias))), y)

    def refuses(r: dict) -> bool:
        if r["relevance"] < floor:
            return True
        z = (np.asarray(features(r)) - mean) / scale
        return 1 / (1 + math.exp(-float(z @ weights + bias))) >= threshold

    return refuses


def _held_out(rows: list[dict], features, rule) -> dict:
    refused = {}
    for held in lopo_data.PRODUCTS:
        refuses = _fit([r for r in rows if r["product"] != held], features, rule)
        refused |= {r["key"]: refuses(r) for r in rows if r["product"] == held}
    out: dict = {}
    for lang in ("all", "en", "es"):
        answered, refusing = [], []
        for product in lopo_data.PRODUCTS:
            mine = [r for r in rows if r["product"] == product and lang in ("all", r["lang"])]
            kept = [not refused[r["key"]] for r in mine if r["answerable"]]
            said_no = [refused[r["key"]] for r in mine if not r["answerable"]]
            if kept:
                answered.append(float(np.mean(kept)))
            if said_no:
                refusing.append(float(np.mean(said_no)))
        out[lang] = {
            "answered": float(np.mean(answered)),
            "answered_worst": min(answered),
            "refused": float(np.mean(refusing)),
            "refused_worst": min(refusing),
        }
    crossing = [not refused[r["key"]] for r in rows if r["kind"] == "cross-language"]
    out["cross_language_answered"] = float(np.mean(crossing)) if crossing else float("nan")
    for kind in ("in-domain", "other-product"):  # the two kinds of unanswerable question, pooled
        mine = [refused[r["key"]] for r in rows if r["kind"] == kind]
        out[f"{kind}_refused"] = float(np.mean(mine)) if mine else float("nan")
    return out


if __name__ == "__main__":
    main()
