"""Leave-one-product-out evaluation on the dev set: the figures that estimate unseen manuals.

Three steps, each resumable, under ``--work`` (default /work/lopo; the layout is bench/lopo_data.py):

    python bench/eval_lopo.py build      # documents, the full index and its per-product copies
    python bench/eval_lopo.py signals    # every question's refusal signals (retrieval + the
                                         # generator's probe; no answer decoded): signals.jsonl
    python bench/eval_lopo.py fit        # the refusal decision, fitted on 4 products and scored on
                                         # the 5th, five times; then on all 5 -> rag/refusal_models.json
    python bench/eval_lopo.py e2e        # docqa eval with generation, each product's questions
                                         # answered with the decision fitted without that product

``fit`` prints the held-out table (per product and language: answerable questions answered,
unanswerable refused, by kind) and writes ``bench/results/eval_lopo-fit.json``; ``e2e`` runs
``rag.evaluate.evaluate`` (what ``docqa eval`` runs) per product and index, merges the results and
writes ``bench/results/eval_lopo-e2e.json`` with every product's summary, the mean and the worst.
Nothing in the decision is chosen on the product it is scored on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lopo_data

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["build", "signals", "fit", "refold", "e2e", "extract", "score"])
    parser.add_argument("--work", default="/work/lopo", help="documents, indexes, signals and runs")
    parser.add_argument("--limit", type=int, default=None, help="first N questions per kind (a quick look)")
    parser.add_argument("--products", default=",".join(lopo_data.PRODUCTS))
    parser.add_argument("--runs", default="runs", help="e2e/score: the runs folder under --work")
    parser.add_argument("--no-write-model", action="store_true", help="fit: leave rag/refusal_models.json")
    parser.add_argument("--out", default="runs-extract", help="extract: the runs folder it writes")
    parser.add_argument(
        "--gold-text",
        action="store_true",
        help="score: a cited chunk of another file that holds the answer's first 100 characters is a "
        "citation hit too (harden's answers are copied inside one long answer; bench/README.md)",
    )
    parser.add_argument(
        "--folds", default=None, help="refold: a fit's JSON whose per-product models to score"
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="signals: an earlier signals.jsonl; e2e: an earlier runs folder. A question whose "
        "passages for the prompt are those of that measurement keeps its probe and its answer "
        "(the same prompt gives the same greedy output) instead of running the generator again",
    )
    parser.add_argument(
        "--reused-with",
        default="",
        help="with --reuse: the settings that measurement ran with where they differ from today's, "
        "comma-separated, e.g. dense_weight=0.6",
    )
    parser.add_argument(
        "--fit",
        type=Path,
        default=RESULTS / "eval_lopo-fit.json",
        help="score: the fit whose held-out models decide (default: the last fit's results)",
    )
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    products = [p for p in args.products.split(",") if p]
    steps = {
        "build": _build,
        "signals": _signals,
        "fit": _fit,
        "refold": _refold,
        "e2e": _e2e,
        "extract": _extract,
        "score": _score,
    }
    steps[args.step](work, args, products)


def _settings(work: Path, index: str = "index-all"):
    from ingest.settings import load_settings

    return load_settings(index_dir=work / index)


def _build(work: Path, args, products) -> None:
    from ingest.embedders import load_embedder

    settings = _settings(work)
    timings = lopo_data.build_indexes(work, load_embedder(settings), settings)
    print(json.dumps(timings))


def _selected(args, products) -> list[lopo_data.DevQuestion]:
    """The questions of ``products``; with ``--limit N``, a seeded sample of N per kind, product
    and language (the first questions of a FAQ are its easiest)."""
    questions = [q for q in lopo_data.questions() if q.product in products]
    if not args.limit:
        return questions
    groups: dict[tuple[str, str, str], list] = defaultdict(list)
    for q in questions:
        groups[q.kind, q.product, q.lang].append(q)
    rng = random.Random(0)
    kept = {id(q) for g in groups.values() for q in rng.sample(g, min(args.limit, len(g)))}
    return [q for q in questions if id(q) in kept]


def _models(work: Path):
    """The embedder and generator the settings name, loaded once."""
    from ingest.embedders import load_embedder
    from rag.generate import load_generator

    settings = _settings(work)
    return load_embedder(settings), load_generator(settings)


def _engines(work: Path, names, models, **engine_options):
    """One engine per index, sharing one embedder and one generator."""
    from rag.engine import Engine, open_engine

    embedder, generator = models
    engines = {}
    for name in names:
        settings = _settings(work, name)
        opened = open_engine(settings, embedder=embedder, generator=generator)
        engines[name] = Engine(settings, opened.index, embedder, generator, **engine_options)
    return engines


def _never_refusing(models):
    """A decision that never refuses: the engine still measures every signal (the probe runs)
    and decodes as it does once its real decision has said "answer"."""
    from rag.refusal import FEATURES, RefusalModel

    zeros, ones = (0.0,) * len(FEATURES), (1.0,) * len(FEATURES)
    return RefusalModel(models[0].name, models[1].name, -1.0, zeros, ones, zeros, 0.0, 2.0)


def _signals(work: Path, args, products) -> None:
    """Retrieval and the probe for every question; appended to signals.jsonl as they finish."""
    from ingest.lang import detect_language
    from rag.engine import check_question

    path = work / "signals.jsonl"
    done = {json.loads(line)["key"] for line in path.open()} if path.is_file() else set()
    questions = [q for q in _selected(args, products) if _key(q) not in done]
    questions = _round_robin(questions)  # every kind, product and language early: a fit needs all
    models = _models(work)
    engines = _engines(
        work, sorted({q.index for q in questions}), models, refusal_model=_never_refusing(models)
    )
    earlier = _Earlier(engines, args) if args.reuse else None
    old_rows = {r["key"]: r for r in map(json.loads, args.reuse.open())} if earlier else {}
    start = time.perf_counter()
    with path.open("a", encoding="utf-8") as out:
        for i, q in enumerate(questions, 1):
            engine = engines[q.index]
            question = check_question(q.question)
            lang = detect_language(question)
            lang = lang if lang != "und" else "en"
            t0 = time.perf_counter()
            passages = engine.retrieve(question)
            shown, messages = engine.prompt(question, passages, language=lang)
            old = old_rows.get(_key(q))
            if earlier is not None and old is not None and earlier.same(q.index, question, passages):
                signals = dataclasses.replace(  # the same prompt: the same probe
                    _prompt_signals(question, passages, shown, lang), probability=old["probability"]
                )
            else:
                old = None
                signals = engine.signals(question, passages, shown, messages, lang)  # as the engine measures
            gold_rank = next((p.rank for p in passages if q.gold and p.source.endswith(q.gold)), None)
            row = {
                "key": _key(q),
                "id": q.id,
                "kind": q.kind,
                "product": q.product,
                "lang": q.lang,
                "answer_lang": lang,
                "answerable": q.answerable,
                "index": q.index,
                "relevance": signals.relevance,
                "overlap": signals.overlap,
                "probability": signals.probability,
                "gold_rank": gold_rank,
                # each retrieved passage as the decision could see it (features tried offline)
                "passages": [
                    {
                        "dense": p.dense_score,
                        "lexical": p.lexical_score,
                        "score": p.score,
                        "lang": p.lang,
                        "shown": any(s.chunk_id == p.chunk_id for s in shown),
                        "gold": bool(q.gold and p.source.endswith(q.gold)),
                    }
                    for p in passages
                ],
                "seconds": round(time.perf_counter() - t0, 3) if old is None else old["seconds"],
                "reused": old is not None,
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            if i % 20 == 0 or i == len(questions):
                rate = i / (time.perf_counter() - start)
                print(f"signals {i}/{len(questions)} ({rate:.2f}/s)", file=sys.stderr, flush=True)
    if earlier is not None:
        print(f"{earlier.reused} of {earlier.asked} probes reused from {args.reuse}", file=sys.stderr)


def _prompt_signals(question: str, passages, shown, lang: str):
    """The signals that need no generator (the probe's probability left None)."""
    from rag.refusal import RefusalSignals, overlap, relevance

    return RefusalSignals(relevance(passages), overlap(question, shown), None, lang)


class _Earlier:
    """An earlier measurement's settings, to tell which questions' prompts are unchanged.

    ``same`` retrieves ``top_k`` passages as that measurement did (``--reused-with``) and compares
    them with today's: the same chunks in the same order make the same prompt, so the generator's
    probe and greedy answer would be the same too, and are reused. Retrieval is redone; only the
    generator is spared.
    """

    def __init__(self, engines, args) -> None:
        from rag.engine import Engine

        changes = dict(kv.split("=", 1) for kv in args.reused_with.split(",") if kv.strip())
        self.engines = {
            name: Engine(e.settings.replace(**changes), e.index, e.embedder, e.generator)
            for name, e in engines.items()
        }
        self.asked = self.reused = 0

    def same(self, index_name: str, question: str, passages) -> bool:
        old = self.engines[index_name].retrieve(question)
        self.asked += 1
        same = [p.chunk_id for p in old] == [p.chunk_id for p in passages]
        self.reused += same
        return same


def _auc(positive: list[float], negative: list[float]) -> float | None:
    """How often an answerable question's signal beats an unanswerable one's (ties half)."""
    if not positive or not negative:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def _signal_aucs(rows: list[dict]) -> dict[str, dict[str, float | None]]:
    """Each recorded signal's AUC (answerable vs unanswerable), per answer language and all."""
    out: dict[str, dict[str, float | None]] = {}
    for name, sign in (("relevance", 1), ("overlap", 1), ("probability", -1)):
        for lang in ("all", "en", "es"):
            chosen = [r for r in rows if r.get(name) is not None and lang in ("all", r["answer_lang"])]
            out.setdefault(name, {})[lang] = _auc(
                [sign * r[name] for r in chosen if r["answerable"]],
                [sign * r[name] for r in chosen if not r["answerable"]],
            )
    return out


def _round_robin(questions: list[lopo_data.DevQuestion]) -> list[lopo_data.DevQuestion]:
    """The questions interleaved across (kind, product, language) groups, each group in order."""
    groups: dict[tuple[str, str, str], list] = defaultdict(list)
    for q in questions:
        groups[q.kind, q.product, q.lang].append(q)
    out = []
    while any(groups.values()):
        for group in groups.values():
            if group:
                out.append(group.pop(0))
    return out


def _key(q: lopo_data.DevQuestion) -> str:
    return f"{q.kind}:{q.id}:{q.index}"


def _rows(work: Path) -> list[dict]:
    return [json.loads(line) for line in (work / "signals.jsonl").open()]


def _signals_of(r: dict):
    """A signals.jsonl row as the ``rag.refusal.RefusalSignals`` the engine measured."""
    from rag.refusal import RefusalSignals

    return RefusalSignals(r["relevance"], r["overlap"], r["probability"], r["answer_lang"])


def _fit(work: Path, args, products) -> None:
    from rag.refusal_fit import fit_refusal_model

    rows = [r for r in _rows(work) if r["product"] in products]
    settings = _settings(work)
    embedder = _embedder_name(work)
    generator = Path(settings.generator).name
    signals = _signals_of

    folds = {}
    decisions: dict[str, bool] = {}
    for held in products:
        train = [r for r in rows if r["product"] != held]
        model = fit_refusal_model(
            [signals(r) for r in train],
            [not r["answerable"] for r in train],
            embedder=embedder,
            generator=generator,
            fitted_on=f"dev set without {held}",
        )
        folds[held] = model.as_dict()
        for r in rows:
            if r["product"] == held:
                decisions[r["key"]] = model.refuses(signals(r))
    table = _refusal_table(rows, decisions)
    by_gold = _by_gold_rank(rows, decisions)
    shipped = fit_refusal_model(
        [signals(r) for r in rows],
        [not r["answerable"] for r in rows],
        embedder=embedder,
        generator=generator,
        fitted_on=f"dev set, {len(rows)} questions of {', '.join(products)} (bench/eval_lopo.py; "
        f"probe on {_runtime_label(settings)})",
    )
    aucs = _signal_aucs(rows)
    report = {
        "command": "python bench/eval_lopo.py " + " ".join(sys.argv[1:]),
        "questions": len(rows),
        "signal_auc": aucs,
        "held_out": table,
        "held_out_by_gold_rank": by_gold,
        "folds": folds,
        "shipped": shipped.as_dict(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_lopo-fit.json").write_text(json.dumps(report, indent=1) + "\n")
    _print_refusal_table(table)
    print(
        f"answerable, gold first: {by_gold['gold_first']['answered']:.3f} answered of "
        f"{by_gold['gold_first']['n']}; gold not first: {by_gold['gold_not_first']['answered']:.3f} of "
        f"{by_gold['gold_not_first']['n']}; answered with the gold first: {by_gold['answered_gold_first']:.3f}"
    )
    for name, by_lang in aucs.items():
        print(f"AUC {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in by_lang.items() if v is not None))
    _plot_refusal_table(table, RESULTS / "eval_lopo-fit.png")
    columns = ("answerable", "answered", "unanswerable", "refused")
    _markdown(table, columns, work / "fit-table.md")
    if not args.no_write_model:
        # The decisions of other embedders and generators (torch's fp32 Gemma beside int8) stay.
        path = ROOT / "rag" / "refusal_models.json"
        kept = json.loads(path.read_text())["models"] if path.is_file() else []
        mine = (shipped.embedder, shipped.generator)
        models = [m for m in kept if (m["embedder"], m["generator"]) != mine] + [shipped.as_dict()]
        path.write_text(json.dumps({"models": models}, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {shipped.embedder} + {shipped.generator} to rag/refusal_models.json")


def _refold(work: Path, args, products) -> None:
    """Score an earlier fit's held-out models (``--folds``: its results JSON) on today's signals:
    each product's questions decided by the model fitted without that product, so the figures
    stay held out when retrieval or the prompt changed after that fit."""
    from rag.refusal import RefusalModel

    fitted = json.loads(Path(args.folds).read_text())
    models = {p: RefusalModel.from_dict(fitted["folds"][p]) for p in products}
    rows = [r for r in _rows(work) if r["product"] in products]
    decisions = {}
    for r in rows:
        decisions[r["key"]] = models[r["product"]].refuses(_signals_of(r))
    table = _refusal_table(rows, decisions)
    print(f"{len(rows)} questions; the folds of {args.folds}")
    _print_refusal_table(table)
    out = RESULTS / "eval_lopo-refold.json"
    out.write_text(json.dumps({"command": "python bench/eval_lopo.py " + " ".join(sys.argv[1:]),
                               "folds": str(args.folds), "questions": len(rows), "held_out": table}, indent=1) + "\n")  # fmt: skip


def _embedder_name(work: Path) -> str:
    manifest = json.loads((work / "index-all" / "manifest.json").read_text())
    return manifest["embedder"]


def _refusal_table(rows: list[dict], refused: dict[str, bool]) -> dict:
    """Per product and language: answerable answered, unanswerable refused (by kind)."""
    table: dict[str, dict] = {}
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["product"], r["lang"]].append(r)
        groups[r["product"], "all"].append(r)
        groups["all", r["lang"]].append(r)
        groups["all", "all"].append(r)
    for (product, lang), members in sorted(groups.items()):
        cell = {}
        answerable = [r for r in members if r["answerable"]]
        unanswerable = [r for r in members if not r["answerable"]]
        cell["answerable"] = len(answerable)
        cell["answered"] = _share([not refused[r["key"]] for r in answerable])
        cell["unanswerable"] = len(unanswerable)
        cell["refused"] = _share([refused[r["key"]] for r in unanswerable])
        for kind in ("other-product", "in-domain", "cross-language"):
            of_kind = [r for r in members if r["kind"] == kind]
            if of_kind:
                right = [refused[r["key"]] != r["answerable"] for r in of_kind]
                cell[f"{kind}_right"] = _share(right)
        table[f"{product}/{lang}"] = cell
    for lang in ("all", "en", "es"):
        cells = [table[f"{p}/{lang}"] for p in lopo_data.PRODUCTS if f"{p}/{lang}" in table]
        for name in ("answered", "refused"):
            values = [c[name] for c in cells if c.get(name) is not None]
            if values:
                table.setdefault(f"mean-of-products/{lang}", {})[name] = sum(values) / len(values)
                table.setdefault(f"worst-product/{lang}", {})[name] = min(values)
    return table


def _runtime_label(settings) -> str:
    """The runtime the settings run the generator on; the setting itself when the generator is not
    fetched here (fitting reads stored signals and needs no generator)."""
    from ingest.errors import ModelNotFound
    from rag.generate import runtime_for

    try:
        return runtime_for(settings)
    except ModelNotFound:
        return settings.generator_runtime


def _by_gold_rank(rows: list[dict], refused: dict[str, bool]) -> dict:
    """The answerable FAQ questions (kind "answerable") split by whether retrieval ranked their
    gold first, i.e. whether the one passage shown holds the answer: the share of each the
    decision lets through, and the share of answered questions whose passage is the gold (about
    the citation hit the answers can reach, since the answer cites the passage it was shown).

    >>> rows = [{"key": k, "kind": "answerable", "gold_rank": g} for k, g in (("a", 1), ("b", 1), ("c", None))]
    >>> _by_gold_rank(rows, {"a": False, "b": True, "c": False})["answered_gold_first"]
    0.5
    """
    answerable = [r for r in rows if r["kind"] == "answerable"]
    first = [not refused[r["key"]] for r in answerable if r["gold_rank"] == 1]
    other = [not refused[r["key"]] for r in answerable if r["gold_rank"] != 1]
    answered = sum(first) + sum(other)
    return {
        "gold_first": {"n": len(first), "answered": _share(first)},
        "gold_not_first": {"n": len(other), "answered": _share(other)},
        "answered_gold_first": sum(first) / answered if answered else None,
    }


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _markdown(table: dict, columns: tuple[str, ...], path: Path) -> None:
    """``table`` (row name -> metric -> value) as a Markdown table in ``path``, for the READMEs."""
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, cells in table.items():
        values = [
            _fmt(cells.get(c)) if isinstance(cells.get(c), float) else str(cells.get(c, "")) for c in columns
        ]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    path.write_text("\n".join(lines) + "\n")


def _print_refusal_table(table: dict) -> None:
    print(f"{'product/lang':<26}{'answerable':>11}{'answered':>10}{'unanswerable':>14}{'refused':>9}")
    for name, cell in table.items():
        print(
            f"{name:<26}{cell.get('answerable', ''):>11}{_fmt(cell.get('answered')):>10}"
            f"{cell.get('unanswerable', ''):>14}{_fmt(cell.get('refused')):>9}"
        )


def _plot_refusal_table(table: dict, path: Path) -> None:
    """Bars per held-out product and language: answerable answered, unanswerable refused."""
    from matplotlib.figure import Figure

    names = [n for n in table if not n.startswith(("all/", "mean", "worst")) and not n.endswith("/all")]
    names += [n for n in table if n.startswith("mean-of-products/")]
    fig = Figure(figsize=(max(7.0, 0.8 * len(names) + 2), 4.2))
    ax = fig.add_subplot()
    for offset, (metric, colour) in enumerate((("answered", "#4c72b0"), ("refused", "#dd8452"))):
        values = [table[n].get(metric) for n in names]
        xs = [i + (offset - 0.5) * 0.4 for i in range(len(names))]
        ax.bar(xs, [v or 0 for v in values], 0.4, color=colour, label=_LABELS[metric])
        for x, v in zip(xs, values, strict=True):
            ax.annotate("n/a" if v is None else f"{v:.2f}", (x, v or 0), ha="center", va="bottom", fontsize=7)
    ax.axhline(0.90, color="#4c72b0", lw=0.8, ls="--")
    ax.axhline(0.85, color="#dd8452", lw=0.8, ls="--")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_title("Refusal decision, each product scored by the model fitted without it")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


_LABELS = {"answered": "answerable questions answered", "refused": "unanswerable questions refused"}


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _e2e(work: Path, args, products) -> None:
    """docqa eval with generation over the questions, every answer decoded (no refusal gate).

    The refusal decision comes before decoding and does not change the prompt, so a fold's
    engine answers exactly the decoded answer where its decision lets the question through and
    the refusal sentence where it does not: ``score`` applies each held-out product's decision to
    these runs. Decoding everything once lets the runs start before the decision is fitted.
    """
    from rag.evaluate import evaluate
    from rag.evaluate.questions import load_questions

    questions = _selected(args, products)
    models = _models(work)
    never = _never_refusing(models)  # the probe runs and the model is kept from the refusal sentence
    for held in products:
        mine = [q for q in questions if q.product == held]
        engines = _engines(work, sorted({q.index for q in mine}), models, refusal_model=never)
        for engine in engines.values():
            engine.settings = engine.settings.replace(min_relevance=0.0)  # decided in ``score``
        earlier = _Earlier(engines, args) if args.reuse else None
        for index_name, engine in engines.items():
            subset = [q for q in mine if q.index == index_name]
            qfile = work / "questions" / f"{held}-{index_name}.jsonl"
            qfile.parent.mkdir(exist_ok=True)
            qfile.write_text("".join(json.dumps(q.as_eval_row(), ensure_ascii=False) + "\n" for q in subset))
            if earlier is not None:
                engine = _Replaying(engine, earlier, index_name, args.reuse / f"{held}-{index_name}")
            run = evaluate(
                load_questions(qfile),
                engine,
                out_dir=work / args.runs / f"{held}-{index_name}",
                k=10,
                describe={
                    "product": held,
                    "index": index_name,
                    "refusal": "decided in score",
                    **(
                        {"reused": f"{args.reuse} ({args.reused_with or 'same settings'})"}
                        if args.reuse
                        else {}
                    ),
                },
            )
            print(f"{held} {index_name}: {_brief(run.summary['all'])}", file=sys.stderr, flush=True)
            engine.close()
        if earlier is not None:
            print(f"{held}: {earlier.reused} of {earlier.asked} answers reused", file=sys.stderr)


class _Replaying:
    """An engine for ``evaluate`` that gives an earlier run's answer (``--reuse``) to a question
    whose prompt passages are unchanged (``_Earlier.same``) and asks ``engine`` otherwise."""

    def __init__(self, engine, earlier: _Earlier, index_name: str, run_dir: Path) -> None:
        from rag.evaluate.results import QuestionResult

        self.engine, self.earlier, self.index_name = engine, earlier, index_name
        results = run_dir / "results.jsonl"
        lines = results.open(encoding="utf-8") if results.is_file() else ()
        self.answers = {
            r.question: r.answer for r in (QuestionResult.from_json(json.loads(x)) for x in lines)
        }

    def retrieve(self, question: str, **options):
        return self.engine.retrieve(question, **options)

    def ask(self, question: str, **options):
        record = self.answers.get(question)
        if record is not None and not options.get("scope"):
            given = self.engine.retrieve(question)
            if self.earlier.same(self.index_name, question, given):
                replayed = _replayed(record, question, given, self.engine._language(question, ()))
                if replayed is not None:
                    return replayed
        return self.engine.ask(question, **options)

    def close(self) -> None:
        self.engine.close()


def _replayed(record, question: str, given, lang: str):
    """An earlier run's answer (``AnswerRecord``) as the ``Answer`` the engine gave, over the same
    passages ``given``; None if it cites a chunk they do not hold."""
    from ingest.records import Answer, Citation, Timings

    by_id = {p.chunk_id: p for p in given}
    if any(c["chunk_id"] not in by_id for c in record.citations):
        return None
    citations = tuple(
        Citation(c["number"], c["chunk_id"], c["source"], c["page"], by_id[c["chunk_id"]].heading, "")
        for c in record.citations
    )
    fields = {f.name for f in dataclasses.fields(Timings)}
    return Answer(
        question=question,
        text=record.text,
        citations=citations,
        refused=record.refused,
        unsupported=record.unsupported,
        passages=tuple(given),
        lang=lang,
        timings=Timings(**{k: v for k, v in record.timings.items() if k in fields}),
        refusal_score=record.refusal_score,
        extracted=record.extracted,
    )


def _extract(work: Path, args, products) -> None:
    """The e2e runs in ``--runs`` as today's engine answers them, written to ``--out``.

    ``e2e`` decoded every question under a decision that never refuses, so each refusal in those
    runs is the model's own, written after an "answer" decision: today's engine quotes the passage
    instead (``rag.extractive``); an uncited answer now cites the passage closest in meaning when
    it is close enough (``Engine._cite_by_meaning``). That needs retrieval, the prompt's passage
    fitting and the embedder, no decoding; every other answer is the run's, unchanged. Retrieval is redone and compared with
    the run's (the lexical index changed since): how many top-10 lists differ is printed.
    """
    from ingest.lang import detect_language
    from rag.answer import build_answer, quoted_answer
    from rag.evaluate.questions import load_questions
    from rag.evaluate.results import QuestionResult
    from rag.evaluate.score import score_question
    from rag.extractive import extract
    from rag.refusal import is_refusal

    models = _models(work)
    changed = differ = total = 0
    for run_dir in sorted((work / args.runs).glob("*-index-*")):
        held, index_name = run_dir.name.split("-", 1)
        if held not in products:
            continue
        engine = _engines(work, [index_name], models)[index_name]
        engine.settings = engine.settings.replace(min_relevance=0.0)
        asked = {q.id: q for q in load_questions(work / "questions" / f"{run_dir.name}.jsonl").questions}
        out = work / args.out / run_dir.name
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for line in (run_dir / "results.jsonl").open(encoding="utf-8"):
            result = QuestionResult.from_json(json.loads(line))
            total += 1
            answered = result.answer
            refused = answered is not None and (answered.refused or is_refusal(answered.text))
            if refused or (answered is not None and answered.unsupported):
                question = asked[result.id]
                passages = engine.retrieve(question.question, k=10)
                differ += [p.chunk_id for p in passages] != [r.chunk_id for r in result.retrieved]
                lang = engine._language(question.question, ())
                given = engine.retrieve(question.question)  # what ask() gives the prompt: top_k
                shown, _ = engine.prompt(question.question, given, language=lang)
                answer = None
                if refused:
                    quote = extract(question.question, shown)
                    if quote is not None:
                        answer = quoted_answer(question.question, quote, shown, passages=given, lang=lang)
                else:  # uncited: today's engine cites the passage closest in meaning, if close enough
                    was = build_answer(question.question, answered.text, shown, passages=given, lang=lang)
                    cited = engine._cite_by_meaning(was, shown)
                    answer = None if cited.unsupported else cited
                if answer is not None:
                    result = score_question(
                        question,
                        passages,
                        k=10,
                        latency_s=result.latency_s,
                        answer=answer,
                        detect=detect_language,
                    )
                    changed += 1
            rows.append(json.dumps(result.to_json(), ensure_ascii=False, default=str) + "\n")
        (out / "results.jsonl").write_text("".join(rows), encoding="utf-8")
        engine.close()
    print(
        f"{changed} of {total} answers changed (quotes, citations by meaning); retrieval differs for "
        f"{differ} of those asked again",
        file=sys.stderr,
    )


def _score(work: Path, args, products) -> None:
    """Each held-out product's runs with the decision fitted without it -> the e2e figures."""

    from ingest.records import Answer
    from ingest.store import open_index
    from rag.evaluate.questions import load_questions
    from rag.evaluate.results import QuestionResult
    from rag.evaluate.score import score_question
    from rag.evaluate.summary import summarize
    from rag.refusal import RefusalModel, RefusalSignals, is_refusal, refusal

    fit = json.loads(args.fit.read_text())
    signals = {r["key"]: r for r in _rows(work)}
    questions = {q.id: q for q in _selected(args, products)}
    by_product: dict[str, list] = defaultdict(list)
    summaries, missing = {}, 0
    indexes = {}  # --gold-text: each run's index, opened once
    for held in products:
        model = RefusalModel.from_dict(fit["folds"][held])
        for run_dir in sorted((work / args.runs).glob(f"{held}-index-*")):
            asked = {q.id: q for q in load_questions(work / "questions" / f"{run_dir.name}.jsonl").questions}
            for line in (run_dir / "results.jsonl").open(encoding="utf-8"):
                result = QuestionResult.from_json(json.loads(line))
                dev = questions.get(result.id)
                row = signals.get(_key(dev)) if dev else None
                if row is None:
                    missing += 1
                    continue
                # The probability the run's own generator measured (the default runtime), when
                # recorded; the stored signals were measured once, with torch.
                probability = result.answer.refusal_score
                if probability is None:
                    probability = row["probability"]
                seen = RefusalSignals(row["relevance"], row["overlap"], probability, row["answer_lang"])
                # A refusal in the answer's own words counts as one with today's detection too.
                own = is_refusal(result.answer.text) and not result.answer.extracted
                if (model.refuses(seen) or own) and not result.answer.refused:
                    result = _refused(
                        result, asked[result.id], refusal(row["answer_lang"]), score_question, Answer
                    )
                if args.gold_text:
                    index_dir = work / run_dir.name.split("-", 1)[1]
                    if index_dir not in indexes:
                        indexes[index_dir] = open_index(index_dir)
                    result = _gold_text_hit(result, dev, indexes[index_dir])
                by_product[held].append((dev.kind, result))
        summaries[held] = summarize([r for _, r in by_product[held]])
    for index in indexes.values():
        index.close()
    everything = [pair for pairs in by_product.values() for pair in pairs]
    report = {
        "command": "python bench/eval_lopo.py " + " ".join(sys.argv[1:]),
        "questions": len(everything),
        "left_out_without_signals": missing,
        "per_product": summaries,
        "across_products": _across(summaries),
        "by_kind": {
            kind: summarize([r for k, r in everything if k == kind])["all"]
            for kind in sorted({k for k, _ in everything})
        },
        "all": summarize([r for _, r in everything]),
    }
    (RESULTS / "eval_lopo-e2e.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    _print_e2e(report)
    rows = {f"{p}/{scope}": cells for p, s in report["per_product"].items() for scope, cells in s.items()}
    rows |= report["across_products"] | {f"kind: {k}": v for k, v in report["by_kind"].items()}
    _markdown(rows, ("n", *HEADLINE, "latency_p50"), work / "e2e-table.md")


def _gold_text_hit(result, dev: lopo_data.DevQuestion, index):
    """``result`` with a citation hit where a cited chunk of another file (in ``index``) holds the
    answer's head (``lopo_data.answer_head``); retrieval scores unchanged."""
    head = lopo_data.answer_head(dev.answer)
    if result.answer.refused or result.scores.get("citation_hit") != 0.0 or not head:
        return result
    cited = index.get_chunks([c["chunk_id"] for c in result.answer.citations])  # a record: dicts
    if not any(lopo_data.holds_answer(c.text, head) for c in cited):
        return result
    return dataclasses.replace(result, scores={**result.scores, "citation_hit": 1.0})


def _refused(result, question, text: str, score_question, answer_type):
    """``result`` as the engine would have scored it had it refused (retrieval unchanged)."""
    from ingest.lang import detect_language

    answer = answer_type(result.question, text, refused=True, lang=question.lang or "en")
    rescored = score_question(
        question, [], k=10, latency_s=result.latency_s, answer=answer, detect=detect_language
    )
    retrieval = {k: v for k, v in result.scores.items() if k in RETRIEVAL_SCORES or k.startswith("recall@")}
    return dataclasses.replace(
        rescored,
        retrieved=result.retrieved,
        gold_rank=result.gold_rank,
        scores={**rescored.scores, **retrieval},
    )


RETRIEVAL_SCORES = ("hit@1", "hit@5", "hit@10", "mrr", "ndcg@10")


HEADLINE = ("false_refusal", "refusal_recall", "citation_hit", "lang_match", "f1", "hit@5", "ndcg@10")


def _brief(summary: dict) -> str:
    return ", ".join(f"{m} {_fmt(summary.get(m))}" for m in (*HEADLINE, "latency_p50"))


def _across(summaries: dict[str, dict]) -> dict:
    """Mean and worst over held-out products, per language scope (worst false_refusal = highest)."""
    out: dict[str, dict] = {}
    for scope in ("all", "en", "es"):
        cells = [s[scope] for s in summaries.values() if scope in s]
        for metric in (*HEADLINE, "latency_p50", "latency_p95"):
            values = [c[metric] for c in cells if c.get(metric) is not None]
            if not values:
                continue
            worst = max(values) if metric == "false_refusal" or metric.startswith("latency") else min(values)
            out.setdefault(f"mean/{scope}", {})[metric] = sum(values) / len(values)
            out.setdefault(f"worst/{scope}", {})[metric] = worst
    return out


def _print_e2e(report: dict) -> None:
    rows = {f"{p}/{scope}": cells for p, s in report["per_product"].items() for scope, cells in s.items()}
    rows |= report["across_products"]
    rows |= {f"kind:{k}": v for k, v in report["by_kind"].items()}
    header = f"{'':<24}{'n':>5}" + "".join(f"{m:>15}" for m in (*HEADLINE, "latency_p50"))
    print(header)
    for name, cells in rows.items():
        line = f"{name:<24}{cells.get('n', ''):>5}"
        print(line + "".join(f"{_fmt(cells.get(m)):>15}" for m in (*HEADLINE, "latency_p50")))


if __name__ == "__main__":
    main()
