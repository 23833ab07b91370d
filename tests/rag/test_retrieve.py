"""Retrieval: weighted fusion, the passages it returns, and follow-up search queries."""

from __future__ import annotations

import pytest

from ingest.records import Message, Passage
from rag.refusal import relevance
from rag.retrieve import _normalise, fuse, retrieve, search_query


def test_fuse_weight_one_is_dense_order_and_zero_is_lexical_order():
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    lexical = [("c", 12.0), ("b", 3.0)]
    assert [cid for cid, _ in fuse(dense, lexical, 1.0)] == ["a", "b", "c"]
    assert fuse(dense, lexical, 0.0)[0] == ("c", 1.0)


def test_fuse_rewards_agreement_and_keeps_candidates_of_both_lists():
    dense = [("a", 0.9), ("b", 0.85), ("c", 0.2)]
    lexical = [("b", 10.0), ("d", 9.0), ("a", 1.0)]
    fused = fuse(dense, lexical, 0.5)
    assert fused[0][0] == "b"
    assert {cid for cid, _ in fused} == {"a", "b", "c", "d"}
    assert all(0.0 <= s <= 1.0 for _, s in fused)


def test_a_single_lexical_candidate_does_not_lift_the_others():
    fused = dict(fuse([("a", 0.9), ("b", 0.8), ("c", 0.7)], [("c", 3.0)], 0.4))
    assert fused == pytest.approx({"c": 0.6, "a": 0.4, "b": 0.2})


def test_fuse_with_one_empty_list():
    assert [cid for cid, _ in fuse([("a", 0.5), ("b", 0.4)], [], 0.7)] == ["a", "b"]
    assert fuse([], [], 0.7) == []


@pytest.mark.parametrize("method", ["minmax", "zscore"])
def test_normalise_is_order_preserving(method):
    values = _normalise([3.0, 1.0, 2.0], method)
    assert values[0] > values[2] > values[1]


def test_normalise_constant_scores_and_bad_method():
    assert _normalise([2.0, 2.0], "minmax") == [1.0, 1.0]
    assert _normalise([2.0, 2.0], "zscore") == [0.0, 0.0]
    with pytest.raises(ValueError, match="minmax"):
        _normalise([1.0], "rank")


def test_retrieve_returns_ranked_passages_with_both_scores(index, embedder):
    passages = retrieve("how to measure a voltage", index, embedder, k=3, dense_weight=0.5)
    assert [p.rank for p in passages] == [1, 2, 3]
    assert passages[0].chunk_id == "c001"
    assert passages[0].source == "manual.pdf" and passages[0].page == 2
    assert passages[0].dense_score is not None and passages[0].lexical_score is not None
    assert passages[0].score >= passages[1].score >= passages[2].score


def test_retrieve_folds_accents_lexically(index, embedder):
    passages = retrieve("señal voltios", index, embedder, k=2, dense_weight=0.0)
    assert passages[0].chunk_id == "c003"
    assert passages[0].dense_score is None


def test_retrieve_skips_chunks_removed_after_search(index, embedder):
    index.removed.add("c001")  # found by the search, gone when fetched
    passages = retrieve("how to measure a voltage", index, embedder, k=3, dense_weight=1.0)
    assert "c001" not in [p.chunk_id for p in passages]
    assert [p.rank for p in passages] == list(range(1, len(passages) + 1))


def test_relevance_is_the_best_cosine():
    def passage(dense):
        return Passage("x", "f", "t", 1, "", "en", 1.0, 1, dense_score=dense)

    assert relevance([passage(0.2), passage(0.6), passage(None)]) == 0.6
    assert relevance([passage(None)]) == 0.0
    assert relevance([]) == 0.0


def test_search_query_prefixes_the_previous_user_turn():
    history = [Message("user", "What does WG produce?"), Message("assistant", "A sine wave [1].")]
    assert search_query("And its range?", history) == "What does WG produce? And its range?"


def test_search_query_without_a_previous_user_turn_is_the_question():
    assert search_query("And its range?") == "And its range?"
    assert search_query("And its range?", [Message("assistant", "Hello")]) == "And its range?"


def test_the_fusion_weight_is_the_embedders_unless_set():
    from ingest.errors import ConfigError
    from ingest.settings import Settings
    from rag.retrieve import DEFAULT_DENSE_WEIGHT, dense_weight_for

    auto = Settings().dense_weight
    assert auto < 0  # the default leaves it to the embedder
    assert dense_weight_for(auto, "embeddinggemma-300m+onnx-int8") == 0.9
    assert dense_weight_for(auto, "all-minilm-l6-v2") == 0.6
    assert dense_weight_for(auto, "someone-elses-model") == DEFAULT_DENSE_WEIGHT
    assert dense_weight_for(Settings().replace(dense_weight="0.3").dense_weight, "embeddinggemma-300m") == 0.3
    with pytest.raises(ConfigError, match="dense_weight"):
        Settings().replace(dense_weight=1.5)
