"""The dev set laid out for leave-one-product-out evaluation: documents, indexes, questions.

Documents: every FAQ answer of ``../shared/eval/faq-dev`` as a file of its own,
``answers/<source>-<lang>/<id>.txt`` (the answer without its question), as in the held-out set
docqa is scored on. One index holds them all (``index-all``); for each product P a copy without P's
files (``index-without-<P>``), and for the bilingual products a copy without one language of P
(``index-without-<P>-<lang>``). Copies remove files from a copy of the full index, so nothing is
embedded twice and every index has exactly the vectors of the full one.

Questions, each with the index it is asked against and the product whose fold it belongs to:
- ``answerable``: every dev question against ``index-all``, gold = its own answer file;
- ``other-product``: a product's questions against the index without that product (the eval
  README's construction of unanswerable questions), up to ``OTHER_PRODUCT_PER_LANG`` per product
  and language, sampled with a fixed seed;
- ``in-domain``: questions about the right product that its FAQ does not answer, written for
  docqa (``bench/data/devset_unanswerable.jsonl``), against ``index-all``;
- ``cross-language``: a question whose answer exists only in the other language's FAQ
  (``bench/data/devset_crosslang.jsonl``), against the index without the question's language of
  that product.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faq-dev"
DATA = Path(__file__).resolve().parent / "data"
PRODUCTS = ("python", "r", "zsh", "weechat", "harden")
BILINGUAL = ("weechat", "harden")
OTHER_PRODUCT_PER_LANG = 30


@dataclass(frozen=True)
class DevQuestion:
    """One question of the leave-one-product-out evaluation."""

    id: str
    kind: str  # answerable | other-product | in-domain | cross-language
    product: str  # the fold it belongs to
    lang: str
    question: str
    answerable: bool
    index: str  # index-all, index-without-<P>, index-without-<P>-<lang>
    gold: str = ""  # the gold answer file, relative to the documents folder
    answer: str = ""

    def as_eval_row(self) -> dict:
        """The question as a ``docqa eval`` JSONL row."""
        row = {"id": self.id, "lang": self.lang, "question": self.question, "answerable": self.answerable}
        if self.answerable:
            row |= {"gold": self.gold, "answer": self.answer}
        return row


def product_of(record: dict) -> str:
    return record["source"].split("-")[0]


def dev_records() -> list[dict]:
    lines = (DEV / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def answer_path(record: dict) -> str:
    return f"answers/{product_of(record)}-{record['lang']}/{record['id']}.txt"


def answer_head(answer: str) -> str:
    """What ``--gold-text`` looks for in another file: the answer's first 100 characters, spaces
    collapsed; "" for an answer under 60 characters (a short one, "Yes.", is in many texts by
    chance). harden's FAQ answers are copied inside one long answer (bench/README.md).

    >>> answer_head("Yes.")
    ''
    """
    head = " ".join(answer.split())[:100]
    return head if len(head) >= 60 else ""


def holds_answer(text: str, head: str) -> bool:
    """Whether ``text`` holds ``head`` (an ``answer_head``), spaces collapsed."""
    return bool(head) and head in " ".join(text.split())


def write_documents(docs: Path) -> int:
    """One file per answer under ``docs``; files already right are left alone. Returns the count."""
    records = dev_records()
    for record in records:
        _put(docs / answer_path(record), record["answer"] + "\n")
    return len(records)


def questions() -> list[DevQuestion]:
    """Every question of the evaluation, in a fixed order."""
    records = dev_records()
    kept: dict[str, str] = {}  # identical answers are indexed once, under the first path
    for record in sorted(records, key=answer_path):
        kept.setdefault(record["answer"], answer_path(record))
    out = [
        DevQuestion(
            r["id"],
            "answerable",
            product_of(r),
            r["lang"],
            r["question"],
            True,
            "index-all",
            kept[r["answer"]],
            r["answer"],
        )
        for r in records
    ]
    rng = random.Random(0)
    for product in PRODUCTS:
        for lang in ("en", "es"):
            mine = [r for r in records if product_of(r) == product and r["lang"] == lang]
            for r in rng.sample(mine, min(OTHER_PRODUCT_PER_LANG, len(mine))):
                out.append(
                    DevQuestion(
                        f"other-{r['id']}",
                        "other-product",
                        product,
                        lang,
                        r["question"],
                        False,
                        f"index-without-{product}",
                    )
                )
    for r in _read(DATA / "devset_unanswerable.jsonl"):
        out.append(
            DevQuestion(r["id"], "in-domain", r["product"], r["lang"], r["question"], False, "index-all")
        )
    by_id = {r["id"]: r for r in records}
    for r in _read(DATA / "devset_crosslang.jsonl"):
        gold = by_id[r["gold_id"]]
        out.append(
            DevQuestion(
                r["id"],
                "cross-language",
                r["product"],
                r["lang"],
                r["question"],
                True,
                f"index-without-{r['product']}-{r['lang']}",
                answer_path(gold),
                gold["answer"],
            )
        )
    return out


def index_names() -> list[str]:
    return (
        ["index-all"]
        + [f"index-without-{p}" for p in PRODUCTS]
        + [f"index-without-{p}-{lang}" for p in BILINGUAL for lang in ("en", "es")]
    )


def build_indexes(work: Path, embedder, settings) -> dict[str, float]:
    """The documents, the full index and its copies under ``work``; returns timings in seconds."""
    from eval_devset import LogProgress

    from ingest.pipeline import ingest_folder
    from ingest.store import open_index

    docs = work / "docs"
    start = time.perf_counter()
    write_documents(docs)
    full = work / "index-all"
    report = ingest_folder(docs, full, embedder, settings, progress=LogProgress())
    timings = {"ingest_s": report.seconds, "chunks_added": report.chunks_added}
    for skipped in report.skipped:
        print(f"  skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    for name in index_names()[1:]:
        prefix = "answers/" + name.removeprefix("index-without-")
        target = work / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(full, target)
        with open_index(target) as index:
            gone = [f for f in index.files() if _under(f.path, prefix)]
            for f in gone:
                index.remove_file(f.root, f.path)
            index.commit()
        print(f"{name}: {len(gone)} files removed", file=sys.stderr)
    timings["total_s"] = time.perf_counter() - start
    return timings


def _under(path: str, prefix: str) -> bool:
    """``answers/weechat-en/x.txt`` is under ``answers/weechat`` and ``answers/weechat-en``."""
    folder = path.split("/")[1] if path.count("/") >= 2 else ""
    want = prefix.split("/", 1)[1]
    return folder == want or folder.rsplit("-", 1)[0] == want


def _read(path: Path) -> Iterator[dict]:
    if not path.is_file():
        print(f"missing {path}: those questions are left out", file=sys.stderr)
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def _put(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
