"""Follow-up questions: does searching with the previous user turn help, and does it hurt?

Part 1, on an index of the sample manuals (``docqa ingest corpus/``): each answerable question of
``corpus/questions.jsonl`` is rewritten by hand as a short follow-up to a previous turn (below).
Hit@k of the gold page/heading is reported for: the follow-up alone, the engine
(``Engine.retrieve`` with the history: the question alone and prefixed by the previous user turn,
the prefixed one kept when its best cosine is higher by ``FOLLOW_UP_MARGIN``), always prefixing
the previous turn, and the original self-contained question (upper bound).

Part 2: self-contained questions after an unrelated turn (another product, another language): hit@k
of the question alone, of the engine, and of always prefixing the previous turn.

    python bench/bench_followup.py --index /tmp/corpus-index
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ingest.records import Message
from ingest.settings import load_settings
from rag.engine import open_engine
from rag.retrieve import dense_weight_for, retrieve

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

# question id -> (previous user turn, follow-up)
PAIRS = {
    "en-01": ("What are the inputs A1 and A2 used for?", "What voltage range do they allow?"),
    "en-02": ("What is the constant current source (CCS)?", "What is its nominal current?"),
    "en-03": ("What is PV1 on the expEYES-17?", "To what voltage range can it be set?"),
    "en-04": ("What is the SEN input for?", "Through which resistor is it connected to 3.3 volts?"),
    "en-05": ("What does the wave generator WG produce?", "What is its frequency range?"),
    "en-06": ("Which piezo electric discs come in the accessory set?", "What is their resonant frequency?"),
    "en-07": ("Which software does the expEYES-17 use?", "How do I install it on Debian or Ubuntu?"),
    "en-08": ("What can the SEN terminal measure?", "What resistance range can it measure accurately?"),
    "en-09": ("Can I program the expEYES-17 in Python?", "Which two lines must every program start with?"),
    "en-10": ("Is there a function to read the temperature?", "What does it return?"),
    "en-11": ("What is WeeChat?", "How do I add an IRC server in it?"),
    "en-12": ("How do I manage windows in WeeChat?", "How can I split the screen vertically?"),
    "en-13": ("How do I change an option in WeeChat with /set?", "Do I need to restart it after that?"),
    "en-14": ("How do I change key bindings in WeeChat?", "Which key helps me find key codes?"),
    "es-01": ("¿Para qué sirven las entradas A1 y A2?", "¿Qué rango de voltaje admiten?"),
    "es-02": ("¿Qué es la fuente de corriente constante (CCS)?", "¿Cuál es su valor nominal?"),
    "es-03": ("¿Para qué sirve la entrada SEN?", "¿A qué voltaje está conectada internamente?"),
    "es-04": ("¿Cómo se mide la capacidad en IN1?", "¿Hasta qué valor funciona bien?"),
    "es-05": ("¿Qué discos piezoeléctricos trae el kit?", "¿Qué frecuencia de resonancia tienen?"),
    "es-06": ("¿Qué software usa el eyes17?", "¿Cómo lo instalo con apt en Debian o Ubuntu?"),
    "es-07": ("¿Se puede hacer una pila de limón?", "¿Qué voltaje produce con placas de zinc y cobre?"),
    "es-08": ("¿Cómo sé qué versión del equipo tengo desde Python?", "¿Y qué devuelve get_version()?"),
    "es-09": ("¿Para qué sirve set_sine_amp?", "¿Qué amplitudes se pueden elegir con ella?"),
    "es-10": ("¿Cómo añado un servidor IRC en WeeChat?", "¿Y cómo me uno a un canal?"),
    "es-11": ("¿Cómo me uno a un canal IRC en WeeChat?", "¿Y cómo envío un mensaje privado?"),
    "es-12": (
        "¿Cómo añado un servidor IRC en WeeChat?",
        "¿Cómo hago que se conecte automáticamente al iniciar?",
    ),
}


def _hit(passages, gold: str) -> bool:
    """Whether a passage is at the gold location ``file#page`` or ``file#heading words``."""
    source, _, where = gold.partition("#")
    for p in passages:
        if not p.source.endswith(source):
            continue
        if where.isdigit() and p.page == int(where):
            return True
        if not where.isdigit() and where.lower() in (p.heading or "").lower():
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings(index_dir=args.index)
    questions = {
        q["id"]: q
        for q in map(json.loads, (ROOT / "corpus" / "questions.jsonl").open(encoding="utf-8"))
        if q.get("answerable")
    }
    engine = open_engine(settings)
    hits = {"alone": 0, "rule": 0, "always": 0, "original": 0}
    rows = []

    def search(query: str, lang: str) -> list:
        return retrieve(
            query,
            engine.index,
            engine.embedder,
            k=args.k,
            dense_weight=dense_weight_for(settings.dense_weight, engine.embedder.name),
            lang=lang,
            lang_bonus=settings.same_language_bonus,
        )

    for qid, (previous, follow_up) in PAIRS.items():
        q = questions[qid]
        history = [Message("user", previous), Message("assistant", "…")]
        row = {
            "id": qid,
            "alone": _hit(search(follow_up, q["lang"]), q["gold"]),
            "rule": _hit(engine.retrieve(follow_up, k=args.k, history=history), q["gold"]),
            "always": _hit(search(f"{previous} {follow_up}", q["lang"]), q["gold"]),
            "original": _hit(search(q["question"], q["lang"]), q["gold"]),
        }
        for key in hits:
            hits[key] += row[key]
        rows.append(row)
    n = len(PAIRS)
    print(f"Part 1: {n} follow-ups, hit@{args.k} of the gold page/heading")
    for key, label in [
        ("alone", "follow-up alone"),
        ("rule", "engine (best of both searches)"),
        ("always", "always prefix previous turn"),
        ("original", "self-contained question"),
    ]:
        print(f"  {label:30} {hits[key]:3d}/{n} = {hits[key] / n:.2f}")

    unrelated = {
        "en": "How do I join an IRC channel in WeeChat?",
        "es": "¿Qué es la fuente de corriente constante?",
    }
    plain = with_turn = always = 0
    for q in questions.values():
        turn = unrelated["es" if q["lang"] == "en" else "en"]  # the other product, other language
        history = [Message("user", turn), Message("assistant", "…")]
        always += _hit(search(f"{turn} {q['question']}", q["lang"]), q["gold"])
        plain += _hit(engine.retrieve(q["question"], k=args.k), q["gold"])
        with_turn += _hit(engine.retrieve(q["question"], k=args.k, history=history), q["gold"])
    m = len(questions)
    print(f"\nPart 2: {m} self-contained questions after an unrelated turn")
    print(f"  hit@{args.k}: question alone {plain}/{m}, engine {with_turn}/{m}, always prefixed {always}/{m}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_followup.json"
    summary = {"k": args.k, "pairs": n, "hits": hits, "rows": rows}
    summary["self_contained"] = {"n": m, "hits_alone": plain, "hits_engine": with_turn, "hits_always": always}
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")
    engine.close()


if __name__ == "__main__":
    main()
