"""``docqa eval``: run a question set against an index and report, or compare two runs.

Parses options, calls ``rag.evaluate``, prints the summary table and where the files went. An
interrupted run keeps every finished question; the same command with the same ``--out`` resumes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from rag.cli.common import index_option, models_dir_option, settings_from

SHOWN_PROBLEMS = 10


@click.command("eval")
@click.argument("questions", required=False, type=click.Path(path_type=Path))
@index_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run folder (default: out/eval/<set>-<time>). An unfinished run there resumes.",
)
@click.option("--retrieval-only", is_flag=True, help="Score retrieval only: no generation, fast.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N questions.")
@click.option("--sample", type=click.IntRange(min=1), default=None, help="A random sample of N questions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --sample.")
@click.option(
    "--k",
    "k",
    type=click.IntRange(1, 50),
    default=10,
    show_default=True,
    help="Passages retrieved per question for the retrieval metrics.",
)
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(path_type=Path),
    default=None,
    metavar="RUN_A RUN_B",
    help="Compare two finished runs (folders or results.json).",
)
@click.option("--restart", is_flag=True, help="Start over instead of resuming a run in --out.")
@click.option(
    "--judge",
    is_flag=True,
    help="Also grade answers with the LLM at the settings' OpenAI-compatible server (off by default).",
)
@click.option("--embedder", default=None, help="Embedder the index was built with (a bundled name).")
@click.option("--generator", default=None, help="Generator: a bundled name, a folder, or 'openai'.")
@models_dir_option
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), default=None, help="A docqa.toml file."
)
def evaluate(
    questions: Path | None,
    index_dir: Path | None,
    out_dir: Path | None,
    retrieval_only: bool,
    limit: int | None,
    sample: int | None,
    seed: int,
    k: int,
    compare: tuple[Path, Path] | None,
    restart: bool,
    judge: bool,
    embedder: str | None,
    generator: str | None,
    models_dir: Path | None,
    config: Path | None,
) -> None:
    """Measure retrieval and answers on a question set; write a table, results.json and report.html.

    QUESTIONS is a .jsonl or .csv file (question, and optional id, lang, answer, gold,
    answerable, scope) or a BEIR folder. See corpus/questions.jsonl for an example. A scope
    asks a question about some documents, folders or languages only:

    \b
      {"question": "What is PV1?", "scope": {"documents": ["eyes17.pdf"], "languages": ["es"]}}

    \b
    Example:
      docqa eval corpus/questions.jsonl --retrieval-only
      docqa eval corpus/questions.jsonl --limit 8 --out out/eval/full
      docqa eval --compare out/eval/run-a out/eval/run-b
    """
    if compare:
        from rag.evaluate.compare import compare_runs, format_comparison, load_run

        click.echo(format_comparison(compare_runs(load_run(compare[0]), load_run(compare[1]))))
        return
    if questions is None:
        raise click.UsageError("give a QUESTIONS file, or --compare RUN_A RUN_B")
    if judge and retrieval_only:
        raise click.UsageError("--judge grades answers; drop --retrieval-only")
    from rag.engine import open_engine
    from rag.evaluate import load_questions
    from rag.evaluate.report import format_table, write_report
    from rag.retrieve import dense_weight_for

    settings = settings_from(
        config, index_dir=index_dir, models_dir=models_dir, embedder=embedder, generator=generator
    )
    question_set = load_questions(questions)
    for problem in question_set.problems[:SHOWN_PROBLEMS]:
        click.echo(f"warning: {problem}", err=True)
    if len(question_set.problems) > SHOWN_PROBLEMS:
        click.echo(f"warning: {len(question_set.problems) - SHOWN_PROBLEMS} more rows skipped", err=True)
    out_dir = out_dir or Path("out/eval") / f"{questions.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    grader = _judge(settings) if judge else None
    engine = open_engine(settings)
    describe = {
        "index": str(Path(settings.index_dir).expanduser().resolve()),
        "embedder": engine.embedder.name,
        "generator": None if retrieval_only else settings.generator,
        "top_k": settings.top_k,
        "dense_weight": dense_weight_for(settings.dense_weight, engine.embedder.name),
    }
    options = dict(retrieval_only=retrieval_only, k=k, limit=limit, sample=sample, seed=seed, judge=grader)
    try:
        run = _run(question_set, engine, out_dir, resume=not restart, describe=describe, **options)
    finally:
        engine.close()
    click.echo(format_table(run.summary))
    if run.resumed:
        click.echo(f"({run.resumed} results reused from the interrupted run)", err=True)
    click.echo(f"results: {out_dir / 'results.json'}")
    click.echo(f"report:  {write_report(run)}")


def _judge(settings):
    """An LLM judge on the OpenAI-compatible server named in the settings."""
    from rag.evaluate.judge import LLMJudge
    from rag.openai_generator import OpenAIGenerator

    key = os.environ.get(settings.openai_api_key_env, "")
    return LLMJudge(OpenAIGenerator(settings.openai_base_url, settings.openai_model, api_key=key))


def _run(question_set, engine, out_dir, **options):
    """``rag.evaluate.evaluate`` under a progress bar; Ctrl-C says how to resume."""
    from tqdm import tqdm

    from rag.evaluate import evaluate as run_evaluation

    with tqdm(file=sys.stderr, unit="q", desc="eval", dynamic_ncols=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            return run_evaluation(question_set, engine, out_dir=out_dir, progress=progress, **options)
        except KeyboardInterrupt:
            bar.close()
            click.echo(
                f"interrupted: finished questions are kept in {out_dir}; "
                f"run the same command with --out {out_dir} to resume",
                err=True,
            )
            raise click.exceptions.Exit(130) from None
