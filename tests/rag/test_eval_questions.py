"""Question sets: JSONL, CSV and BEIR, with bad rows reported by line and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.errors import DocqaError
from ingest.records import Scope
from rag.evaluate.gold import GoldRef
from rag.evaluate.questions import load_questions

ROOT = Path(__file__).resolve().parents[2]


def _detect(text: str) -> str:
    return "es" if "¿" in text else "en"


def test_jsonl_with_bad_rows(tmp_path):
    lines = [
        json.dumps(
            {
                "id": "a",
                "question": "What is SEN?",
                "gold": "eyes17/en/eyes17.pdf#10",
                "answer": "A resistive sensor input",
                "lang": "en",
            }
        ),
        "",
        "{not json",
        json.dumps({"id": "b", "question": "   "}),
        json.dumps({"question": "¿Qué es PV1?", "gold": ["a.pdf#3", "b.pdf"]}),
        json.dumps({"id": "a", "question": "duplicate id"}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "u", "question": "Who won?", "answerable": "false"}),
        json.dumps({"id": "v", "question": "Bad flag", "answerable": "perhaps"}),
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    qs = load_questions(path, detect=_detect)
    assert [q.id for q in qs.questions] == ["a", "line-5", "u"]
    a, es, u = qs.questions
    assert a.gold == (GoldRef("file", "eyes17/en/eyes17.pdf", page=10),) and a.answer.startswith("A res")
    assert es.lang == "es" and len(es.gold) == 2 and es.line == 5
    assert u.answerable is False
    joined = "\n".join(qs.problems)
    for line in (3, 4, 6, 7, 9):
        assert f"line {line}:" in joined
    assert "not JSON" in joined and "duplicate id 'a'" in joined and "answerable" in joined


def test_csv(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(
        "id,question,gold,answerable,lang\n"
        "c1,How do I add a server?,weechat/q.en.html | weechat/q.es.html,true,en\n"
        "c2,,x.pdf,true,en\n"
        'c3,"¿Quién ganó, al final?",,false,es\n'
        "c4,extra cells,a,true,en,oops\n",
        encoding="utf-8",
    )
    qs = load_questions(path, detect=_detect)
    assert [q.id for q in qs.questions] == ["c1", "c3"]
    assert len(qs.questions[0].gold) == 2 and qs.questions[1].answerable is False
    assert any(p.startswith("line 3:") for p in qs.problems)
    assert any(p.startswith("line 5:") and "more cells" in p for p in qs.problems)


def test_beir_folder(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "SEN", "text": "SEN is connected to 3.3 V"})
        + "\n"
        + json.dumps({"_id": "d2", "text": "PV1 spans -5 to 5 V"})
        + "\n",
        encoding="utf-8",
    )
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "What is SEN tied to?"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "No qrels for me"})
        + "\n"
        + "garbage\n",
        encoding="utf-8",
    )
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq1\tzz\t1\n", encoding="utf-8"
    )
    qs = load_questions(tmp_path, detect=_detect)
    assert [q.id for q in qs.questions] == ["q1"]
    assert qs.questions[0].gold == (GoldRef("text", "SEN SEN is connected to 3.3 V"),)
    assert any("unknown corpus-id 'zz'" in p for p in qs.problems)
    assert any("queries.jsonl line 3" in p for p in qs.problems)


@pytest.mark.parametrize("content", ["", "\n\n", "{bad\n", json.dumps({"id": "x"}) + "\n"])
def test_empty_or_useless_set_is_an_error(tmp_path, content):
    path = tmp_path / "q.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DocqaError, match="no usable question"):
        load_questions(path, detect=_detect)


def test_unreadable_sets(tmp_path):
    with pytest.raises(DocqaError, match="no question set"):
        load_questions(tmp_path / "missing.jsonl", detect=_detect)
    (tmp_path / "q.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DocqaError, match="unknown question set format"):
        load_questions(tmp_path / "q.txt", detect=_detect)
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DocqaError, match="cannot read"):
        load_questions(tmp_path / "bin.jsonl", detect=_detect)
    (tmp_path / "h.csv").write_text("id,text\n1,x\n", encoding="utf-8")
    with pytest.raises(DocqaError, match="no 'question' column"):
        load_questions(tmp_path / "h.csv", detect=_detect)
    with pytest.raises(DocqaError, match="not a BEIR folder"):
        load_questions(tmp_path, detect=_detect)


def test_shipped_question_set_loads_cleanly():
    path = ROOT / "corpus" / "questions.jsonl"
    if not path.is_file():
        pytest.skip("corpus/questions.jsonl not written yet")
    qs = load_questions(path)
    assert qs.problems == ()
    langs = {q.lang for q in qs.questions}
    assert {"en", "es"} <= langs
    assert sum(not q.answerable for q in qs.questions) >= 6
    assert all(q.gold and q.answer for q in qs.questions if q.answerable)


def test_a_scope_per_question_in_jsonl_and_csv(tmp_path):
    scope = {"documents": ["eyes17.pdf"], "folders": ["weechat"], "languages": ["es"]}
    rows = [
        {"id": "s", "question": "¿Qué es PV1?", "scope": scope},
        {"id": "n", "question": "What is PV1?", "scope": {}},
        {"id": "x", "question": "Bad key", "scope": {"docs": ["a.pdf"]}},
        {"id": "y", "question": "Bad value", "scope": {"documents": "a.pdf"}},
        {"id": "z", "question": "Bad type", "scope": ["a.pdf"]},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    qs = load_questions(path, detect=_detect)
    assert [(q.id, q.scope) for q in qs.questions] == [
        ("s", Scope(documents=("eyes17.pdf",), folders=("weechat",), languages=("es",))),
        ("n", None),
    ]
    joined = "\n".join(qs.problems)
    assert "line 3: unknown 'scope' field 'docs'" in joined
    assert "line 4: 'scope' documents must be a list of strings" in joined
    assert "line 5: 'scope' must be an object" in joined

    csv_path = tmp_path / "q.csv"
    csv_path.write_text(
        'id,question,scope\nc1,What is PV1?,"{""languages"": [""en""]}"\nc2,What is SQ1?,\nc3,Bad,{oops\n',
        encoding="utf-8",
    )
    qs = load_questions(csv_path, detect=_detect)
    assert [(q.id, q.scope) for q in qs.questions] == [("c1", Scope(languages=("en",))), ("c2", None)]
    assert any(p.startswith("line 4: 'scope' is not a JSON object") for p in qs.problems)
