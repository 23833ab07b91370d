"""`docqa eval` end to end: a real index (fake embedder via the Python API; real MiniLM via the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.pipeline import ingest_folder
from ingest.settings import load_settings
from rag.cli import cli
from rag.engine import open_engine
from rag.evaluate import evaluate, load_questions
from rag.evaluate.report import write_report
from tests.fakes import HashEmbedder, ReplayGenerator

DOCS = {
    "lab/sen.txt": "The SEN input is connected to 3.3 volts through a 5.1k resistor inside the box.",
    "lab/pv1.txt": "PV1 is a programmable voltage source that can be set from -5 to +5 volts.",
    "chat/irc.txt": "To join an IRC channel type /join followed by the channel name.",
}
QUESTIONS = [
    {
        "id": "q1",
        "lang": "en",
        "question": "What is the SEN input connected to?",
        "gold": "lab/sen.txt",
        "answer": "3.3 volts through a 5.1k resistor",
    },
    {
        "id": "q2",
        "lang": "en",
        "question": "How do I join an IRC channel?",
        "gold": "chat/irc.txt",
        "answer": "type /join and the channel name",
    },
    {"id": "q3", "lang": "en", "question": "What is the boiling point of mercury?", "answerable": False},
]


def _folder(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    for name, text in DOCS.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    return docs, questions


def test_python_api_on_a_real_index(tmp_path):
    docs, questions = _folder(tmp_path)
    settings = load_settings(env={}, index_dir=tmp_path / "index", chunk_tokens=64, chunk_overlap=8)
    embedder = HashEmbedder()
    ingest_folder(docs, settings.index_dir, embedder, settings)
    generator = ReplayGenerator(
        "The SEN input is connected to 3.3 volts through a 5.1k resistor [1].",
        "Type /join and the channel name [1].",
        "I do not know.",
    )
    with open_engine(settings, embedder=embedder, generator=generator) as engine:
        run = evaluate(load_questions(questions), engine, out_dir=tmp_path / "run", k=3)
    by_id = {r.id: r for r in run.results}
    assert by_id["q1"].gold_rank == 1 and by_id["q2"].gold_rank == 1
    assert by_id["q1"].retrieved[0].source == "lab/sen.txt"
    assert run.summary["all"]["hit@1"] == 1.0
    assert by_id["q1"].answer is not None and by_id["q1"].scores["f1"] > 0.5
    html = write_report(run).read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3


def test_cli_needs_questions_or_compare():
    result = CliRunner().invoke(cli, ["eval"])
    assert result.exit_code == 2 and "QUESTIONS" in result.output


def test_cli_missing_index_is_one_clean_line(tmp_path, monkeypatch):
    _, questions = _folder(tmp_path)
    monkeypatch.delenv("DOCQA_INDEX", raising=False)
    result = CliRunner().invoke(
        cli, ["eval", str(questions), "--index", str(tmp_path / "none")], standalone_mode=False
    )
    assert "no index at" in str(result.exception) and "docqa ingest" in str(result.exception)


def test_cli_compare(tmp_path):
    runs = []
    for name, rank in (("a", 2), ("b", 1)):
        result = {
            "id": "q1",
            "question": "Q?",
            "lang": "en",
            "answerable": True,
            "gold": ["x.txt"],
            "gold_answer": "",
            "retrieved": [],
            "gold_rank": rank,
            "scores": {"hit@1": float(rank == 1), "mrr": 1 / rank},
            "latency_s": 0.1,
        }
        data = {
            "config": {"k": 10},
            "summary": {"all": {"n": 1, "hit@1": float(rank == 1), "mrr": 1 / rank}},
            "questions": [result],
        }
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(data), encoding="utf-8")
        runs.append(str(tmp_path / name))
    result = CliRunner().invoke(cli, ["eval", "--compare", *runs])
    assert result.exit_code == 0, result.output
    assert "+1.000" in result.output and "+0.500" in result.output
    assert "improved in B: 1 questions" in result.output and "rank 2 -> 1" in result.output


@pytest.mark.slow
def test_cli_with_minilm_on_real_index(tmp_path, minilm, models_dir):
    docs, questions = _folder(tmp_path)
    settings = load_settings(
        env={}, index_dir=tmp_path / "index", models_dir=models_dir, embedder="all-minilm-l6-v2"
    )
    ingest_folder(docs, settings.index_dir, minilm, settings)
    out = tmp_path / "run"
    args = [
        "eval",
        str(questions),
        "--index",
        str(settings.index_dir),
        "--retrieval-only",
        "--embedder",
        "all-minilm-l6-v2",
        "--models-dir",
        str(models_dir),
        "--out",
        str(out),
        "--k",
        "3",
    ]
    result = CliRunner().invoke(cli, args, standalone_mode=False)
    assert result.exception is None, result.output
    assert "hit@1" in result.output and "report:" in result.output
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["summary"]["all"]["hit@1"] == 1.0
    assert (out / "report.html").is_file() and (out / "gold_rank.png").is_file()
