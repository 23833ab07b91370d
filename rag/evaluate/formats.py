"""Question-set files -> raw rows with their line numbers: JSONL, CSV and BEIR folders.

Each reader yields ``(line, row)`` for a good row and ``(line, reason)`` for a bad one, so the
caller can skip and report it. Turning rows into questions is ``questions.py``'s job.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.errors import DocqaError
from rag.evaluate.gold import GoldRef

_SPLITS = ("test", "dev", "train")


def collect(items: Iterator[tuple[int, Any]]) -> tuple[list[tuple[int, Any]], list[str]]:
    rows, problems = [], []
    for line, item in items:
        if isinstance(item, str):
            problems.append(f"line {line}: {item}; row skipped")
        else:
            rows.append((line, item))
    return rows, problems


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, dict) for each object, (line, message) for each line that is not one."""
    for line, text in enumerate(read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            yield line, f"not JSON ({err.msg})"
            continue
        yield line, row if isinstance(row, dict) else "not a JSON object"


def read_csv(path: Path) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(read_text(path).splitlines(keepends=True))
    if not reader.fieldnames or "question" not in reader.fieldnames:
        raise DocqaError(f"{path}: the CSV header has no 'question' column")
    for row in reader:
        if None in row:
            yield reader.line_num, "more cells than header columns"
        else:
            yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}


READERS = {".jsonl": read_jsonl, ".json": read_jsonl, ".csv": read_csv}


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DocqaError(f"cannot read question set {path}: {err}; check the file (UTF-8 text)") from None


def beir_rows(folder: Path) -> tuple[list[tuple[int, Any]], list[str]]:
    """BEIR queries with qrels -> rows whose gold is the relevant documents' text."""
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).is_file():
            raise DocqaError(f"{folder} is not a BEIR folder: {name} is missing")
    qrels_file = _qrels_file(folder)
    problems: list[str] = []
    docs: dict[str, str] = {}
    for line, row in read_jsonl(folder / "corpus.jsonl"):
        if isinstance(row, str) or "_id" not in row:
            problems.append(f"corpus.jsonl line {line}: {row if isinstance(row, str) else 'no _id'}")
            continue
        docs[str(row["_id"])] = " ".join(p for p in (row.get("title"), row.get("text")) if p)
    relevant: dict[str, list[str]] = {}
    for line, text in enumerate(read_text(qrels_file).splitlines(), start=1):
        cells = text.split("\t")
        if len(cells) < 3 or cells[0] == "query-id":
            continue
        if cells[1] not in docs:
            problems.append(f"{qrels_file.name} line {line}: unknown corpus-id {cells[1]!r}")
        elif _is_positive(cells[2]):
            relevant.setdefault(cells[0], []).append(docs[cells[1]])
    rows: list[tuple[int, Any]] = []
    for line, row in read_jsonl(folder / "queries.jsonl"):
        if isinstance(row, str):
            problems.append(f"queries.jsonl line {line}: {row}; row skipped")
        elif str(row.get("_id")) in relevant:
            gold = [GoldRef("text", t) for t in relevant[str(row["_id"])]]
            rows.append((line, {"id": str(row["_id"]), "question": row.get("text"), "gold": gold}))
    return rows, problems


def _qrels_file(folder: Path) -> Path:
    for split in _SPLITS:
        if (folder / "qrels" / f"{split}.tsv").is_file():
            return folder / "qrels" / f"{split}.tsv"
    raise DocqaError(f"{folder}: no qrels/test.tsv, dev.tsv or train.tsv; is it a BEIR folder?")


def _is_positive(score: str) -> bool:
    try:
        return float(score) > 0
    except ValueError:
        return False
