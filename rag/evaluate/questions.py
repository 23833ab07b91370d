"""Question sets: JSONL, CSV or a BEIR folder -> a ``QuestionSet``.

JSONL (one object a line) and CSV (a header row) share the fields ``question`` (required),
``id``, ``lang``, ``answer`` (gold answer text), ``gold`` (see ``gold.parse_gold``; a list in
JSONL, ``|``-separated in CSV), ``answerable`` (true/false, default true) and ``scope``: what the
question may be answered from, ``{"documents": [...], "folders": [...], "languages": [...]}``
(any of the three; in CSV that object as JSON text), passed to the engine as a
``ingest.records.Scope``. A BEIR folder holds
``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``; each query's gold is the text of
its relevant documents, matched by overlap, so the corpus may be indexed in any form.

A bad row is skipped and reported with its line number; a set that is missing, unreadable or has
no usable question raises ``DocqaError``. Nothing here talks to an index or a model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.errors import DocqaError
from ingest.records import Scope
from rag.evaluate.formats import READERS, beir_rows, collect
from rag.evaluate.gold import GoldRef, parse_gold

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation question.

    Args:
        id: unique within the set.
        question: the text asked.
        lang: language code of the question ("en", "es"...), detected when not given.
        answer: the gold answer text, "" when not known.
        gold: what a right retrieval finds; empty when not known.
        answerable: False when the documents do not answer it (the right answer is a refusal).
        line: where it was read (1-based line, 0 when not from a file).
        scope: the documents, folders and languages it is asked about; None: the whole index.
    """

    id: str
    question: str
    lang: str = "und"
    answer: str = ""
    gold: tuple[GoldRef, ...] = ()
    answerable: bool = True
    line: int = 0
    scope: Scope | None = None


@dataclass(frozen=True, slots=True)
class QuestionSet:
    """Questions read from ``source``, and the rows that were skipped and why."""

    source: str
    questions: tuple[Question, ...]
    problems: tuple[str, ...] = ()


def load_questions(path: Path, *, detect: Callable[[str], str] | None = None) -> QuestionSet:
    """Read a question set, skipping (and reporting) bad rows.

    Args:
        path: a ``.jsonl``/``.json`` file, a ``.csv`` file, or a BEIR folder.
        detect: language detector for rows without ``lang`` (default ``ingest.lang``'s).

    Raises:
        DocqaError: the set is missing, unreadable, of an unknown format or has no usable row.
    """
    path = Path(path)
    if detect is None:
        from ingest.lang import detect_language as detect
    if path.is_dir():
        rows, problems = beir_rows(path)
    elif path.is_file():
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise DocqaError(f"{path}: unknown question set format; use .jsonl, .csv or a BEIR folder")
        rows, problems = collect(reader(path))
    else:
        raise DocqaError(f"no question set at {path}; give a .jsonl or .csv file or a BEIR folder")
    questions: list[Question] = []
    seen: set[str] = set()
    for line, row in rows:
        try:
            question = _question(row, line, detect)
        except ValueError as err:
            problems.append(f"line {line}: {err}; row skipped")
            continue
        if question.id in seen:
            problems.append(f"line {line}: duplicate id {question.id!r}; row skipped")
            continue
        seen.add(question.id)
        questions.append(question)
    if not questions:
        detail = f" ({problems[0]})" if problems else ""
        raise DocqaError(f"{path}: no usable question{detail}; each row needs a 'question'")
    return QuestionSet(str(path), tuple(questions), tuple(problems))


def _question(row: Mapping[str, Any], line: int, detect: Callable[[str], str]) -> Question:
    """A row -> a Question; ValueError with the reason when the row is bad."""
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("missing or empty 'question'")
    gold_raw = row.get("gold", ())
    if isinstance(gold_raw, str):
        gold_raw = [g for g in gold_raw.split("|") if g.strip()]
    if not isinstance(gold_raw, list | tuple) or not all(isinstance(g, str | GoldRef) for g in gold_raw):
        raise ValueError("'gold' must be a string or a list of strings")
    gold = tuple(g if isinstance(g, GoldRef) else parse_gold(g) for g in gold_raw)
    answer = row.get("answer", "")
    if not isinstance(answer, str):
        raise ValueError("'answer' must be text")
    lang = str(row.get("lang") or "").strip().lower() or detect(text)
    return Question(
        id=str(row.get("id") or f"line-{line}"),
        question=text.strip(),
        lang=lang,
        answer=answer.strip(),
        gold=gold,
        answerable=_boolean(row.get("answerable", True)),
        line=line,
        scope=_scope(row.get("scope")),
    )


def _scope(value: Any) -> Scope | None:
    """A row's ``scope`` object (or its JSON text) -> a Scope; None when absent or empty.

    >>> _scope({"documents": ["eyes17.pdf"], "languages": ["es"]})
    Scope(documents=('eyes17.pdf',), folders=(), languages=('es',))
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"'scope' is not a JSON object ({err.msg})") from None
    if not isinstance(value, dict):
        raise ValueError("'scope' must be an object with 'documents', 'folders' or 'languages'")
    fields = ("documents", "folders", "languages")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f"unknown 'scope' field {unknown[0]!r}; use {', '.join(fields)}")
    lists = {name: value.get(name, []) for name in fields}
    for name, items in lists.items():
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError(f"'scope' {name} must be a list of strings")
    return Scope(**{name: tuple(items) for name, items in lists.items()}) or None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"'answerable' must be true or false, not {value!r}")
