"""``docqa ask``: answer one question from the index, streaming, with citations and timings.

``--doc``, ``--folder`` and ``--lang`` scope the question (``ingest.records.Scope``): only those
documents, folders and passage languages are searched.

Everything printed passes through ``ingest.control.printable``: a file name, a heading or a
model's answer cannot send escape sequences to the terminal.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import click

from ingest.control import printable
from ingest.records import Answer, Passage, Scope
from rag.cli.common import index_option, models_dir_option, settings_from


@click.command()
@click.argument("question")
@index_option
@click.option("-k", "top_k", type=int, default=None, help="Passages to retrieve (default: settings top_k).")
@click.option("--generator", default=None, help="A bundled generator name, a model folder, or 'openai'.")
@click.option("--embedder", default=None, help="The embedder the index was built with (default: settings).")
@click.option("--language", default=None, help="Answer language code (default: the question's).")
@click.option(
    "--doc",
    "documents",
    multiple=True,
    help="Answer only from this document: its name as cited, its path, or its file name. Repeatable.",
)
@click.option(
    "--folder", "folders", multiple=True, help="Answer only from documents under this folder. Repeatable."
)
@click.option(
    "--lang",
    "languages",
    multiple=True,
    help="Answer only from passages in this language (en, es, fr, de, it, pt). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole Answer as JSON (no streaming).")
@models_dir_option
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), default=None, help="A docqa.toml file."
)
def ask(
    question: str,
    index_dir: Path | None,
    top_k: int | None,
    generator: str | None,
    embedder: str | None,
    language: str | None,
    documents: tuple[str, ...],
    folders: tuple[str, ...],
    languages: tuple[str, ...],
    as_json: bool,
    models_dir: Path | None,
    config: Path | None,
) -> None:
    """Answer QUESTION from the indexed documents, citing them.

    The answer streams as it is written, then its citations ([n] file p. N) and timings. When
    the documents do not answer, it says so instead of guessing. --doc, --folder and --lang
    restrict it to some documents, folders or languages (documents and folders add up).

    \b
    Example:
      docqa ask "How do I measure a voltage?"
      docqa ask "¿Cómo mido un voltaje?" --index ./index -k 3
      docqa ask "What is the sampling rate?" --generator qwen2.5-coder-1.5b-instruct
      docqa ask "What is SQ1?" --json | jq .citations
      docqa ask "What is SQ1?" --config ~/docqa.toml
      docqa ask "What is the range of PV1?" --doc eyes17.pdf --lang es
      docqa ask "How do I join a channel?" --folder weechat
    """
    from rag.engine import check_question, open_engine
    from rag.scope import scope_sources

    question = check_question(question)  # before seconds of model loading
    scope = Scope(documents, folders, languages) or None
    settings = settings_from(
        config,
        index_dir=index_dir,
        top_k=top_k,
        generator=generator,
        embedder=embedder,
        models_dir=models_dir,
    )
    with open_engine(settings) as engine:
        if scope:  # a misspelt --doc fails before the generator loads
            scope_sources(scope, engine.index.files())
        engine.generator  # noqa: B018 -- load the model now, so the timings are the answer's own
        answer, streamed = None, ""
        for item in engine.stream(question, language=language, scope=scope):
            if isinstance(item, Answer):
                answer = item
            elif not as_json:
                streamed += item
                click.echo(printable(item), nl=False)
    if answer is None:  # the engine always ends its stream with an Answer
        raise click.ClickException("no answer was produced")
    if as_json:
        click.echo(_escape_c1(json.dumps(dataclasses.asdict(answer), indent=1, ensure_ascii=False)))
        return
    click.echo()
    click.echo(printable(_footer(answer, streamed)))


def _footer(answer: Answer, streamed: str) -> str:
    """Citations, notes and timings printed after the streamed text."""
    lines = [""]
    if answer.citations and answer.text.strip() != streamed.strip():
        lines.append(f"With its citations: {answer.text}")
    if answer.invalid_citations:
        lines.append(f"(removed {answer.invalid_citations} citation(s) that pointed to no passage)")
    if answer.unsupported:
        lines.append("(no valid citation: check this answer against the documents)")
    if answer.refused and answer.refusal_score is not None:
        lines.append(
            f"(the passages look related, but the model judged they do not answer it: "
            f"refusal probability {answer.refusal_score:.2f})"
        )
    if answer.refused and answer.passages:
        lines.append("Closest passages:")
        lines.extend(f"  {_where(p)} (relevance {p.dense_score or 0:.2f})" for p in answer.passages[:3])
    for c in answer.citations:
        page = f" p. {c.page}" if c.page is not None else ""
        heading = f" — {c.heading}" if c.heading else ""
        lines.append(f"[{c.number}] {c.source}{page}{heading}")
    t = answer.timings
    first = f"first token {t.first_token:.1f} s, " if t.first_token is not None else ""
    lines.append(
        f"({first}total {t.total:.1f} s; retrieval {t.retrieve * 1000:.0f} ms; "
        f"{t.prompt_tokens} prompt + {t.completion_tokens} answer tokens)"
    )
    return "\n".join(lines)


def _escape_c1(text: str) -> str:
    """JSON with DEL, C1 controls and bidi overrides written as ``\\u`` escapes (``json.dumps``
    escapes only C0); the same data, nothing a terminal obeys.

    >>> _escape_c1('"a\x9b2J"')
    '"a\\\\u009b2J"'
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _where(p: Passage) -> str:
    page = f" p. {p.page}" if p.page is not None else ""
    return f"{p.source}{page}"
