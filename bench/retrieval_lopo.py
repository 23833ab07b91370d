"""Retrieval on the dev answers, leave-one-product-out: the fusion weight and the same-language bonus.

The index is ``eval_lopo.py build``'s ``index-all`` (every FAQ answer of ``../shared/eval/faq-dev``
as a document of its own, chunked and embedded by ``docqa ingest`` with the default embedder); a
question's gold is its own answer file. Dense and lexical hits are the store's own
(``search_dense``, ``search_lexical`` with ``rag.retrieve.lexical_query``), fused by
``rag.retrieve.fuse`` with the same-language bonus the engine adds, a file ranking at its best chunk.

Scored over a grid of dense weights and bonuses: the shipped settings, dense and lexical alone, the
weight chosen on the other four products (bonus as shipped), the (weight, bonus) pair chosen on the
other four products, and that pair chosen per language. A question is always scored with values
chosen without its product; figures are means over the questions of a language, and per product.

    python bench/eval_lopo.py build        # once: /work/lopo/index-all
    python bench/retrieval_lopo.py
    python bench/retrieval_lopo.py --index /work/full/index --embed-backend onnx-int8 --name full
        # the answers among the dev corpus's manual pages, indexed with docqa ingest (onnx-int8):
        # cp -r ../shared/eval/faq-dev/corpus /work/full/docs/pages  (keep its licence note), and
        # python -c "import lopo_data; lopo_data.write_documents(Path('/work/full/docs'))" in bench/,
        # then docqa ingest /work/full/docs --index /work/full/index
    python bench/retrieval_lopo.py ... --gold-text
        # also a chunk of another file holding the answer's text counts as gold (harden's FAQ)

Snowball stemming of the lexical side was measured with this script at commit c5196a5 (its
``words``/``stems`` variants) and reverted: bench/README.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lopo_data
from tune_fusion import RESULTS, _metrics

from ingest.embedders import load_embedder
from ingest.lang import detect_language
from ingest.settings import load_settings
from ingest.store import open_index
from rag.retrieve import dense_weight_for, fuse, lexical_query

WEIGHTS = [round(0.1 * i, 1) for i in range(11)]
BONUSES = [0.0, 0.1, 0.2, 0.3]
CANDIDATES = 40
LANGS = ("en", "es")


def _rank(
    dense, lexical, weight, bonus, q_lang, chunk_lang, chunk_doc, gold, holding=frozenset()
) -> int | None:
    """1-based rank of document ``gold`` in the fused list (a document ranks at its best chunk); a
    chunk in ``holding`` (another file's chunk that holds the gold answer's text) counts as gold."""
    fused = fuse(dense, lexical, weight)
    if bonus and q_lang != "und":
        fused = sorted(
            ((c, s + (bonus if chunk_lang[c] == q_lang else 0.0)) for c, s in fused), key=lambda x: -x[1]
        )
    seen: list[str] = []
    for cid, _ in fused:
        doc = chunk_doc[cid]
        if doc not in seen:
            seen.append(doc)
        if doc == gold or cid in holding:
            return seen.index(doc) + 1
    return None


def _ndcg(ranks: list[int | None]) -> float:
    return _metrics(ranks)["ndcg@10"] if ranks else 0.0


def _best(ranks: dict, questions: list[dict], default: tuple, options: list, product: str, lang: str = ""):
    """Of ``options`` (keys of ``ranks``), the one with the best mean nDCG@10 over the questions of
    products other than ``product`` (and of language ``lang``, if given); ties go to the option
    nearest ``default``."""
    keep = [q["source"] != product and lang in ("", q["lang"]) for q in questions]

    def score(option: tuple) -> tuple[float, float]:
        near = -sum(abs(a - b) for a, b in zip(option, default, strict=True))
        return _ndcg([r for r, k in zip(ranks[option], keep, strict=True) if k]), near

    return max(options, key=score)


def _same_products(ranks: list[int | None], questions: list[dict]) -> dict:
    """English and Spanish on the same products: Spanish questions exist for two of the five
    products only, so a gap between the languages' means mixes language with product difficulty.
    Here English is scored on the products that have Spanish questions, each product weighted by
    its number of Spanish questions (direct standardisation), beside Spanish itself."""
    by: dict[tuple[str, str], list] = defaultdict(list)
    for r, q in zip(ranks, questions, strict=True):
        by[q["source"], q["lang"]].append(r)
    shared = sorted(p for p, lang in by if lang == "es" and (p, "en") in by)
    weight = {p: len(by[p, "es"]) for p in shared}
    total = sum(weight.values()) or 1
    out: dict = {"products": {p: {"en": len(by[p, "en"]), "es": weight[p]} for p in shared}}
    for lang in LANGS:
        per = {p: _metrics(by[p, lang]) for p in shared}
        out[lang] = {
            m: round(sum(weight[p] * per[p][m] for p in shared) / total, 4) for m in ("ndcg@10", "r@1")
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("/work/lopo/index-all"))
    parser.add_argument("--weight", type=float, default=None, help="default: the embedder's own")
    parser.add_argument("--bonus", type=float, default=load_settings().same_language_bonus)
    parser.add_argument("--embed-backend", default="torch", help="the backend the index was built with")
    parser.add_argument("--name", default="", help="added to the results file's name")
    parser.add_argument(
        "--gold-text",
        action="store_true",
        help="also count a chunk of another file that holds the answer's first 100 characters as gold "
        "(harden's FAQ: most answers are copied inside one long answer)",
    )
    args = parser.parse_args()
    questions = [  # each answerable dev question, its gold the file its answer is indexed as
        {
            "id": Path(q.gold).stem,
            "source": q.product,
            "lang": q.lang,
            "question": q.question,
            "answer": q.answer,
        }
        for q in lopo_data.questions()
        if q.kind == "answerable"
    ]
    with open_index(args.index) as index:
        embedder = load_embedder(load_settings(index_dir=args.index, embed_backend=args.embed_backend))
        print(f"{len(questions)} questions, {index.count()} chunks; {embedder.name}", flush=True)
        if args.weight is None:
            args.weight = dense_weight_for(load_settings().dense_weight, embedder.name)
        t0 = time.perf_counter()
        cached = args.index.parent / f"{args.index.name}-question-vectors.npy"  # beside the index
        texts = [q["question"] for q in questions]
        if cached.is_file() and len(np.load(cached)) == len(texts):
            vectors = np.load(cached)
        else:
            vectors = np.asarray(embedder.embed_queries(texts), dtype=np.float32)
            np.save(cached, vectors)
        print(f"questions embedded in {time.perf_counter() - t0:.0f} s", flush=True)
        dense = [index.search_dense(v, CANDIDATES) for v in vectors]
        t0 = time.perf_counter()
        lexical = [index.search_lexical(lexical_query(t), CANDIDATES) for t in texts]
        lexical_ms = 1000 * (time.perf_counter() - t0) / len(texts)
        found = {cid for hits in dense + lexical for cid, _ in hits}
        chunks = {c.id: c for c in index.get_chunks(sorted(found))}
        count = index.count()
    chunk_lang = {cid: c.lang for cid, c in chunks.items()}
    chunk_doc = {cid: Path(c.source).stem for cid, c in chunks.items()}
    holding = [frozenset() for _ in questions]
    if args.gold_text:  # among each question's candidates, the chunks of other files holding its answer
        for i, q in enumerate(questions):
            head = lopo_data.answer_head(q["answer"])
            candidates = {cid for cid, _ in dense[i] + lexical[i]}
            holding[i] = frozenset(
                c
                for c in candidates
                if chunk_doc[c] != q["id"] and lopo_data.holds_answer(chunks[c].text, head)
            )
        print(
            f"{sum(bool(h) for h in holding)} questions have their answer's text in another file", flush=True
        )
    q_lang = [detect_language(t) for t in texts]
    products = sorted({q["source"] for q in questions})
    grid = [(w, b) for w in WEIGHTS for b in BONUSES]
    ranks = {  # every question's rank at every (weight, bonus): what the choices are made on
        (w, b): [
            _rank(dense[i], lexical[i], w, b, q_lang[i], chunk_lang, chunk_doc, q["id"], holding[i])
            for i, q in enumerate(questions)
        ]
        for w, b in grid
    }
    shipped = (args.weight, args.bonus)
    weights_only = [(w, args.bonus) for w in WEIGHTS]
    chosen_weight = {p: _best(ranks, questions, shipped, weights_only, p) for p in products}
    chosen_pair = {p: _best(ranks, questions, shipped, grid, p) for p in products}
    chosen_lang = {
        (p, lang): _best(ranks, questions, shipped, grid, p, lang) for p in products for lang in LANGS
    }
    n = range(len(questions))
    schemes = {
        f"shipped w={args.weight} bonus={args.bonus}": ranks[shipped],
        "dense only": ranks[1.0, args.bonus],
        "lexical only": ranks[0.0, args.bonus],
        "weight held out": [ranks[chosen_weight[questions[i]["source"]]][i] for i in n],
        "weight and bonus held out": [ranks[chosen_pair[questions[i]["source"]]][i] for i in n],
        "both per language, held out": [
            ranks[chosen_lang[questions[i]["source"], questions[i]["lang"]]][i] for i in n
        ],
    }
    table = {}
    for scheme, scheme_ranks in schemes.items():
        row = {}
        for lang in LANGS:
            held = [scheme_ranks[i] for i, q in enumerate(questions) if q["lang"] == lang]
            row[lang] = {k: round(v, 4) for k, v in _metrics(held).items()}
            per_product = defaultdict(list)
            for i, q in enumerate(questions):
                if q["lang"] == lang:
                    per_product[q["source"]].append(scheme_ranks[i])
            row[lang]["products"] = {p: round(_ndcg(r), 4) for p, r in sorted(per_product.items())}
        row["same_products"] = _same_products(scheme_ranks, questions)
        table[scheme] = row
    fitted_all = _best(ranks, questions, shipped, grid, product="")  # on all five: what would ship
    report = {
        "command": "python bench/retrieval_lopo.py " + " ".join(sys.argv[1:]),
        "embedder": embedder.name,
        "chunks": count,
        "shipped": shipped,
        "gold_text": args.gold_text,
        "questions_with_answer_text_elsewhere": sum(bool(h) for h in holding),
        "lexical_ms_per_query": round(lexical_ms, 2),
        "chosen_weight": chosen_weight,
        "chosen_weight_and_bonus": chosen_pair,
        "chosen_per_language": {f"{p}/{lang}": v for (p, lang), v in chosen_lang.items()},
        "chosen_on_all_products": fitted_all,
        "schemes": table,
        "by_weight": {  # every weight at the shipped bonus, all products (not held out)
            str(w): {
                lang: round(
                    _ndcg(
                        [r for r, q in zip(ranks[w, args.bonus], questions, strict=True) if q["lang"] == lang]
                    ),
                    4,
                )
                for lang in LANGS
            }
            for w in WEIGHTS
        },
    }
    print(f"  {'scheme':34} | en nDCG@10  R@1  hit@5 | es nDCG@10  R@1  hit@5")
    for scheme, row in table.items():
        cells = " | ".join(
            f"{row[lang]['ndcg@10']:.3f} {row[lang]['r@1']:.3f} {row[lang]['hit@5']:.3f}" for lang in LANGS
        )
        print(f"  {scheme:34} | {cells}")
    print("  same products (English weighted as the Spanish questions), nDCG@10 / R@1 en | es:")
    for scheme, row in table.items():
        same = row["same_products"]
        print(
            f"  {scheme:34} | {same['en']['ndcg@10']:.3f} {same['en']['r@1']:.3f}"
            f" | {same['es']['ndcg@10']:.3f} {same['es']['r@1']:.3f}"
        )
    print(
        "  nDCG@10 en/es by weight: "
        + ", ".join(f"{w} {v['en']:.3f}/{v['es']:.3f}" for w, v in report["by_weight"].items())
    )
    for name in ("chosen_weight", "chosen_weight_and_bonus", "chosen_per_language", "chosen_on_all_products"):
        print(f"  {name}: {report[name]}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"retrieval_lopo-{embedder.name}{'-' + args.name if args.name else ''}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
