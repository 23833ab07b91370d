"""Running an evaluation with a scripted engine: scores, files, resume, report, compare."""

from __future__ import annotations

import json
import re

import pytest

from ingest.errors import DocqaError, EmptyScope
from ingest.records import Answer, Citation, Passage, Scope, Timings
from rag.evaluate import evaluate
from rag.evaluate.compare import compare_runs, format_comparison, load_run
from rag.evaluate.gold import parse_gold
from rag.evaluate.questions import Question, QuestionSet
from rag.evaluate.report import format_table, write_report


def _passage(source, page, text, rank):
    return Passage(
        chunk_id=f"{source}#{page}",
        source=source,
        text=text,
        page=page,
        heading="",
        lang="en",
        score=1.0 / rank,
        rank=rank,
    )


PAGES = {
    ("m.pdf", 1): "SEN is internally connected to 3.3 volts through a 5.1k resistor.",
    ("m.pdf", 2): "PV1 can be set from -5 to +5 volts with 12 bit resolution.",
    ("m.pdf", 3): "SQ1 is a square wave from 0 to 5 volts.",
}


class ScriptedEngine:
    """Returns the pages in a fixed order per question and replays answers; can fail on cue."""

    def __init__(self, order, answers=None, fail_on=None):
        self.order, self.answers, self.fail_on = order, answers or {}, fail_on
        self.asked: list[str] = []
        self.scopes: list[tuple[str, str, Scope | None]] = []

    def retrieve(self, question, *, k=None, scope=None):
        if question == self.fail_on:
            raise KeyboardInterrupt
        if scope == Scope(documents=("missing.pdf",)):
            raise EmptyScope("no indexed document is named 'missing.pdf'; use one of: m.pdf")
        self.asked.append(question)
        self.scopes.append(("retrieve", question, scope))
        pages = self.order.get(question, [3, 2, 1])
        return [_passage("m.pdf", p, PAGES[("m.pdf", p)], i + 1) for i, p in enumerate(pages)][:k]

    def ask(self, question, *, k=None, scope=None):
        self.scopes.append(("ask", question, scope))
        text, refused, cites = self.answers.get(question, ("I do not know.", True, ()))
        passages = tuple(self.retrieve(question, k=3, scope=scope))
        by_page = {p.page: p for p in passages}
        citations = tuple(
            Citation(n, by_page[pg].chunk_id, "m.pdf", pg, "", by_page[pg].text[:40]) for n, pg in cites
        )
        return Answer(
            question,
            text,
            citations=citations,
            refused=refused,
            passages=passages,
            lang="en",
            timings=Timings(total=0.5 + len(self.asked) / 10),
        )


QUESTIONS = QuestionSet(
    "mem",
    (
        Question("q1", "What is SEN connected to?", "en", "3.3 volts through 5.1k", (parse_gold("m.pdf#1"),)),
        Question("q2", "What range has PV1?", "en", "-5 to +5 volts", (parse_gold("m.pdf#2"),)),
        Question("q3", "¿Qué es SQ1?", "es", "una onda cuadrada", (parse_gold("m.pdf#3"),)),
        Question("q4", "Who painted the Mona Lisa?", "en", answerable=False),
        Question("q5", "¿Quién ganó el mundial?", "es", answerable=False),
    ),
)
ORDER = {"What is SEN connected to?": [1, 2, 3], "What range has PV1?": [1, 3, 2]}


def _lang(text):
    return "es" if re.search(r"\b(una|es)\b", text) else "en"


def test_retrieval_only_scores_and_files(tmp_path):
    run = evaluate(QUESTIONS, ScriptedEngine(ORDER), out_dir=tmp_path, retrieval_only=True, k=3, detect=_lang)
    ranks = {r.id: r.gold_rank for r in run.results}
    assert ranks == {"q1": 1, "q2": 3, "q3": 1, "q4": None, "q5": None}
    s = run.summary
    assert s["all"]["n"] == 5 and s["all"]["n_hit@1"] == 3
    assert s["all"]["hit@1"] == pytest.approx(2 / 3)
    assert s["all"]["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert s["en"]["ndcg@10"] == pytest.approx((1 + 0.5) / 2)  # rank 3 -> 1/log2(4)
    assert s["es"]["hit@1"] == 1.0 and "f1" not in s["all"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"]["all"]["n"] == 5 and len(saved["questions"]) == 5
    assert saved["questions"][1]["retrieved"][2]["relevant"] is True
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 5


def test_answer_metrics(tmp_path):
    answers = {
        "What is SEN connected to?": (
            "SEN is connected to 3.3 volts through a 5.1k resistor [1].",
            False,
            ((1, 1),),
        ),
        "What range has PV1?": ("PV1 goes from -5 to +5 volts with 12 bit resolution [1].", False, ((1, 3),)),
        "Who painted the Mona Lisa?": ("The documents do not say.", True, ()),
        "¿Quién ganó el mundial?": ("Argentina won it in a penalty shootout.", False, ()),
    }
    run = evaluate(QUESTIONS, ScriptedEngine(ORDER, answers), out_dir=tmp_path, k=3, detect=_lang)
    by_id = {r.id: r for r in run.results}
    assert by_id["q1"].scores["citation_hit"] == 1.0 and by_id["q1"].scores["groundedness"] == 1.0
    assert by_id["q2"].scores["citation_hit"] == 0.0  # cited page 3, gold is page 2
    assert by_id["q2"].scores["groundedness"] == 0.0  # page 3 says nothing about PV1
    assert by_id["q3"].scores["f1"] == 0.0 and by_id["q3"].answer.refused
    assert by_id["q5"].scores["lang_match"] == 0.0 and by_id["q5"].scores["groundedness"] == 0.0
    assert by_id["q5"].scores["faithfulness"] == 0.0  # in no retrieved passage either
    assert by_id["q2"].scores["faithfulness"] == 1.0  # right text, wrong citation
    s = run.summary["all"]
    # refused: q3 (answerable) and q4 (unanswerable) -> precision 1/2; unanswerable q4, q5 -> recall 1/2
    assert s["refusal_precision"] == 0.5 and s["refusal_recall"] == 0.5
    assert s["false_refusal"] == 1 / 3  # q3 of the answerable q1, q2, q3
    assert s["latency_p50"] is not None and s["latency_p95"] >= s["latency_p50"]
    table = format_table(run.summary)
    assert "refusal_precision" in table and "0.500" in table and "es" in table.splitlines()[0]
    assert table.splitlines()[4].startswith("false_refusal")  # the headline, first metric


def test_interrupted_run_resumes(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            QUESTIONS,
            ScriptedEngine(ORDER, fail_on="¿Qué es SQ1?"),
            out_dir=tmp_path,
            retrieval_only=True,
            k=3,
            detect=_lang,
        )
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
    with (tmp_path / "results.jsonl").open("a") as f:
        f.write('{"id": "q3", "quest')  # a record cut short by the kill
    engine, seen = ScriptedEngine(ORDER), []
    run = evaluate(
        QUESTIONS,
        engine,
        out_dir=tmp_path,
        retrieval_only=True,
        k=3,
        detect=_lang,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert engine.asked == ["¿Qué es SQ1?", "Who painted the Mona Lisa?", "¿Quién ganó el mundial?"]
    assert run.resumed == 2 and [r.id for r in run.results] == ["q1", "q2", "q3", "q4", "q5"]
    assert seen == [(2, 5), (3, 5), (4, 5), (5, 5)]
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 5
    fresh = ScriptedEngine(ORDER)
    evaluate(QUESTIONS, fresh, out_dir=tmp_path, retrieval_only=True, k=3, detect=_lang, resume=False)
    assert len(fresh.asked) == 5
    with pytest.raises(DocqaError, match="holds another run"):
        evaluate(QUESTIONS, ScriptedEngine(ORDER), out_dir=tmp_path, retrieval_only=True, k=5, detect=_lang)


def test_sample_and_limit(tmp_path):
    a = evaluate(
        QUESTIONS,
        ScriptedEngine(ORDER),
        out_dir=tmp_path / "a",
        retrieval_only=True,
        sample=3,
        seed=7,
        detect=_lang,
    )
    b = evaluate(
        QUESTIONS,
        ScriptedEngine(ORDER),
        out_dir=tmp_path / "b",
        retrieval_only=True,
        sample=3,
        seed=7,
        limit=2,
        detect=_lang,
    )
    assert len(a.results) == 3 and [r.id for r in b.results] == [r.id for r in a.results][:2]
    ids = [r.id for r in a.results]
    assert ids == sorted(ids)  # set order kept
    with pytest.raises(DocqaError, match="--limit"):
        evaluate(QUESTIONS, ScriptedEngine(ORDER), out_dir=tmp_path / "c", limit=0, detect=_lang)


def test_report_is_self_contained_with_plots(tmp_path):
    run = evaluate(QUESTIONS, ScriptedEngine(ORDER), out_dir=tmp_path, k=3, detect=_lang)
    html = write_report(run).read_text(encoding="utf-8")
    images = re.findall(r"<img [^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 3 and all(len(i) > 2000 for i in images)
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", html)
    assert "<script" not in html and "<link" not in html
    assert "Worst questions" in html and "Who painted the Mona Lisa?" in html
    for name in ("metrics_by_language.png", "gold_rank.png", "latency.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_two_runs(tmp_path):
    evaluate(QUESTIONS, ScriptedEngine(ORDER), out_dir=tmp_path / "a", retrieval_only=True, k=3, detect=_lang)
    better = {**ORDER, "What range has PV1?": [2, 1, 3]}
    evaluate(
        QUESTIONS,
        ScriptedEngine(better),
        out_dir=tmp_path / "b",
        retrieval_only=True,
        k=3,
        detect=_lang,
        describe={"embedder": "other"},
    )
    c = compare_runs(load_run(tmp_path / "a"), load_run(tmp_path / "b" / "results.json"))
    row = next(m for m in c.metrics if m.scope == "all" and m.metric == "hit@1")
    assert (row.a, row.b) == (pytest.approx(2 / 3), 1.0) and row.delta == pytest.approx(1 / 3)
    assert [d.id for d in c.improved] == ["q2"] and c.regressed == ()
    assert ("engine.embedder", None, "other") in c.settings
    text = format_comparison(c)
    assert "+0.333" in text and "q2 [en] rank 3 -> 1" in text
    with pytest.raises(DocqaError, match="cannot read run"):
        load_run(tmp_path / "nope")


def test_llm_judge_is_off_by_default_and_parses_grades(tmp_path):
    from rag.evaluate.judge import LLMJudge
    from tests.fakes import ReplayGenerator

    answers = {q: ("Some answer [1].", False, ((1, 1),)) for q in ORDER}
    plain = evaluate(QUESTIONS, ScriptedEngine(ORDER, answers), out_dir=tmp_path / "a", k=3, detect=_lang)
    assert "judge" not in plain.summary["all"]
    grader = ReplayGenerator("Grade: 4", "no idea")  # q1 -> 0.75; q2 -> not judged (None, not 0)
    run = evaluate(
        QUESTIONS,
        ScriptedEngine(ORDER, answers),
        out_dir=tmp_path / "b",
        k=3,
        detect=_lang,
        judge=LLMJudge(grader),
    )
    by_id = {r.id: r for r in run.results}
    assert by_id["q1"].scores["judge"] == 0.75 and "judge" not in by_id["q2"].scores
    assert run.summary["all"]["judge"] == 0.75 and run.summary["all"]["n_judge"] == 1
    assert len(grader.prompts) == 2  # refused and unanswerable questions are not judged
    assert "REFERENCE: 3.3 volts through 5.1k" in grader.prompts[0][1].content
    assert run.config["judge"] == "replay"


def test_each_question_is_asked_with_its_own_scope(tmp_path):
    spanish = Scope(documents=("m.pdf",), languages=("es",))
    questions = [QUESTIONS.questions[0], Question("s1", "¿Qué es SQ1?", "es", scope=spanish)]
    engine = ScriptedEngine(ORDER)
    evaluate(questions, engine, out_dir=tmp_path / "a", k=3, detect=_lang)
    assert list(dict.fromkeys(engine.scopes)) == [
        ("retrieve", "What is SEN connected to?", None),
        ("ask", "What is SEN connected to?", None),
        ("retrieve", "¿Qué es SQ1?", spanish),
        ("ask", "¿Qué es SQ1?", spanish),
    ]
    with pytest.raises(EmptyScope, match="question 'm1' \\(line 7\\): no indexed document is named"):
        evaluate(
            [Question("m1", "What is SQ1?", "en", line=7, scope=Scope(documents=("missing.pdf",)))],
            engine,
            out_dir=tmp_path / "b",
            retrieval_only=True,
        )
