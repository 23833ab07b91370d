"""Metrics on hand-computed examples: each expected value is worked out in the comment beside it."""

from __future__ import annotations

import math

import pytest

from ingest.records import Passage
from rag.evaluate import metrics
from rag.evaluate.gold import GoldRef, matches, parse_gold, relevance, text_overlaps


def _p(source: str, page: int | None = None, text: str = "", chunk_id: str = "c", heading: str = ""):
    return Passage(
        chunk_id=chunk_id, source=source, text=text, page=page, heading=heading, lang="en", score=0.0, rank=1
    )


def test_retrieval_scores_gold_at_rank_three():
    s = metrics.retrieval_scores([False, False, True, False], n_gold=1, k=10)
    assert s["hit@1"] == 0.0 and s["hit@5"] == 1.0 and s["hit@10"] == 1.0
    assert s["mrr"] == pytest.approx(1 / 3)
    assert s["ndcg@10"] == pytest.approx(0.5)  # 1/log2(3+1) over an ideal of 1/log2(2) = 1
    assert s["recall@10"] == 1.0


def test_ndcg_two_golds():
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3) = 1.63093
    assert metrics.ndcg([True, False, True], n_gold=2) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert metrics.ndcg([False, True], n_gold=1) == pytest.approx(1 / math.log2(3))  # 0.63093
    assert metrics.ndcg([False] * 10 + [True], n_gold=1) == 0.0  # rank 11 is past the cutoff
    assert metrics.ndcg([], n_gold=0) == 0.0


def test_recall_and_cut_at_k():
    s = metrics.retrieval_scores([True, False, False, True, True], n_gold=4, k=4)
    assert s["recall@4"] == pytest.approx(2 / 4)  # the 5th passage is beyond k
    assert s["hit@5"] == 1.0 and s["mrr"] == 1.0
    nothing = metrics.retrieval_scores([False] * 10, n_gold=1, k=10)
    assert nothing == {
        "hit@1": 0.0,
        "hit@5": 0.0,
        "hit@10": 0.0,
        "mrr": 0.0,
        "ndcg@10": 0.0,
        "recall@10": 0.0,
    }
    assert metrics.gold_rank([False, False, True]) == 3 and metrics.gold_rank([False]) is None


def test_token_f1_and_rouge_l():
    # pred tokens: about 1 1 ma (4); gold: nominal value 1 1 ma (5); common 3 -> P .75 R .6 -> F 2/3
    assert metrics.token_f1("about 1.1 mA", "The nominal value is 1.1 mA") == pytest.approx(2 / 3)
    assert metrics.token_f1("Yes [1].", "yes") == 1.0  # markers and case do not count
    assert metrics.token_f1("", "anything") == 0.0
    assert metrics.token_f1("PV1: from -5V to +5V", "from -5 V to +5 V (PV1)") == 1.0  # units split off
    # pred: connect resistor sen (3); gold: connect resistor between sen ground (5); LCS 3
    assert metrics.rouge_l(
        "connect the resistor to SEN", "connect resistor between SEN and ground"
    ) == pytest.approx(2 * 1 * 0.6 / 1.6)
    # order matters for ROUGE-L, not for F1: "b a" vs "a b" -> LCS 1 of 2
    assert metrics.rouge_l("beta alpha", "alpha beta") == pytest.approx(0.5)
    assert metrics.token_f1("beta alpha", "alpha beta") == 1.0
    assert metrics._lcs_length("abcbdab", "bdcaba") == 4


def test_groundedness():
    cited = {1: "SEN is connected to 3.3 volts through a 5.1k resistor", 2: "PV1 goes from -5 to 5 V"}
    # sentence 1 cites [1] and is in it; sentence 2 cites [2] but talks of SEN -> unsupported
    text = "SEN is connected to 3.3 volts [1]. SEN uses a 5.1k resistor inside [2]."
    assert metrics.groundedness(text, cited) == 0.5
    # a sentence without a marker is checked against all cited passages
    assert metrics.groundedness("PV1 range goes from -5 to 5 volts.", cited) == 1.0
    assert metrics.groundedness("Yes.", cited) is None  # too short to judge
    assert metrics.groundedness("The moon is green cheese.", {}) == 0.0


def test_percentile_and_refusal():
    assert metrics.percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    assert metrics.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert metrics.percentile([], 50) is None
    # answerable: T F F F; refused: T T F T -> right refusals 2 of 3 refused, 2 of 3 unanswerable
    s = metrics.refusal_scores([True, False, False, False], [True, True, False, True])
    assert s == {
        "false_refusal": 1.0,
        "refusal_precision": pytest.approx(2 / 3),
        "refusal_recall": pytest.approx(2 / 3),
    }
    none_refused = {"false_refusal": 0.0, "refusal_precision": None, "refusal_recall": None}
    assert metrics.refusal_scores([True], [False]) == none_refused
    assert metrics.refusal_scores([False], [True])["false_refusal"] is None  # no answerable question


def test_parse_gold_kinds():
    assert parse_gold("eyes17/en/eyes17.pdf#12") == GoldRef("file", "eyes17/en/eyes17.pdf", page=12)
    assert parse_gold("answers/x-001.txt") == GoldRef("file", "answers/x-001.txt")
    assert parse_gold("weechat/q.en.html#Add an IRC server") == GoldRef(
        "file", "weechat/q.en.html", heading="Add an IRC server"
    )
    assert parse_gold("0123456789abcdef0123456789abcdef").kind == "chunk"
    assert parse_gold("The nominal value is 1.1 mA").kind == "text"
    assert parse_gold("text:a.txt") == GoldRef("text", "a.txt")
    with pytest.raises(ValueError):
        parse_gold("  ")


def test_gold_matching():
    page = parse_gold("eyes17/en/eyes17.pdf#12")
    assert matches(page, _p("corpus/eyes17/en/eyes17.pdf", 12))  # index built one folder up
    assert not matches(page, _p("eyes17/en/eyes17.pdf", 13))
    assert not matches(page, _p("eyes17/es/eyes17.pdf", 12))
    assert not matches(parse_gold("yes17.pdf"), _p("eyes17.pdf"))  # suffix only at a folder boundary
    heading = parse_gold("q.html#irc server")
    assert matches(heading, _p("q.html", heading="Guide > Add an IRC server"))
    assert matches(GoldRef("chunk", "abc"), _p("x", chunk_id="abc"))
    gold_text = GoldRef("text", "SEN is internally connected to 3.3 volts through a 5.1k resistor")
    assert matches(
        gold_text,
        _p(
            "x",
            text="Resistive Sensor Input (SEN): SEN is internally connected "
            "to 3.3 volts through a 5.1kΩ resistor.",
        ),
    )
    assert not matches(gold_text, _p("x", text="The voltage is 1.5 volts and it is measured at A1."))


def test_text_overlap_both_ways():
    long = "alpha bravo charlie delta echo foxtrot golf hotel india juliet " * 3
    assert text_overlaps(long, "charlie delta echo foxtrot golf hotel")  # chunk inside the gold
    assert text_overlaps("golf hotel", "... golf, hotel!")  # short gold inside the chunk
    assert not text_overlaps("golf hotel", "hotel golf")  # too short for word overlap
    assert not text_overlaps("", "x")


def test_relevance_counts_each_gold_once():
    refs = [parse_gold("a.txt"), parse_gold("b.txt#2")]
    passages = [_p("c.txt"), _p("a.txt"), _p("a.txt"), _p("b.txt", 2)]
    assert relevance(refs, passages) == [False, True, False, True]
