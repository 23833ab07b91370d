"""The refusal decision on fixed signals: fitting, the gate, the threshold and the stored file."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from rag.refusal import FEATURES, RefusalModel, RefusalSignals, load_refusal_model, overlap
from rag.refusal_fit import fit_refusal_model


def _questions(n: int = 200, seed: int = 0) -> tuple[list[RefusalSignals], list[bool]]:
    """Answerable questions: high cosine and overlap, low refusal probability; the others not.
    The classes overlap, so the fit cannot be perfect."""
    rng = random.Random(seed)
    signals, labels = [], []
    for i in range(n):
        unanswerable = i % 3 == 0
        shift = -0.15 if unanswerable else 0.0
        signals.append(
            RefusalSignals(
                relevance=min(max(rng.gauss(0.55 + shift, 0.08), 0.0), 1.0),
                overlap=min(max(rng.gauss(0.7 + 2 * shift, 0.2), 0.0), 1.0),
                probability=min(max(rng.gauss(0.5 if unanswerable else 0.15, 0.15), 0.001), 0.999),
                lang="es" if i % 4 == 0 else "en",
            )
        )
        labels.append(unanswerable)
    return signals, labels


def _rates(model: RefusalModel, signals, labels) -> tuple[float, float]:
    refused = [model.refuses(s) for s in signals]
    kept = sum(not r for r, u in zip(refused, labels, strict=True) if not u) / sum(not u for u in labels)
    caught = sum(r for r, u in zip(refused, labels, strict=True) if u) / sum(labels)
    return kept, caught


def test_fitted_decision_separates_held_out_questions():
    train, train_labels = _questions(seed=1)
    test, test_labels = _questions(seed=2)
    model = fit_refusal_model(train, train_labels, embedder="e", generator="g")
    kept, caught = _rates(model, test, test_labels)
    assert kept >= 0.8 and caught >= 0.8, (kept, caught)
    # Each signal pushes the right way: more relevance and overlap answer, more doubt refuses.
    assert model.weights[0] < 0 and model.weights[1] < 0 and model.weights[2] > 0


def test_retrieval_gate_keeps_nearly_every_answerable_question():
    signals, labels = _questions(seed=3)
    model = fit_refusal_model(signals, labels, embedder="e", generator="g")
    answerable = [s.relevance for s, u in zip(signals, labels, strict=True) if not u]
    assert sum(r < model.min_relevance for r in answerable) <= 0.01 * len(answerable)
    far = RefusalSignals(model.min_relevance - 0.01, 1.0, 0.0, "en")
    assert model.refuses(far)  # below the gate, whatever the model thinks


def test_fitting_needs_both_classes_and_matching_lengths():
    signals, _ = _questions(10)
    with pytest.raises(ValueError, match="answerable and unanswerable"):
        fit_refusal_model(signals, [False] * 10, embedder="e", generator="g")
    with pytest.raises(ValueError, match="labels"):
        fit_refusal_model(signals, [False] * 9, embedder="e", generator="g")


def test_stored_model_round_trips_and_matches_by_names(tmp_path: Path):
    signals, labels = _questions()
    model = fit_refusal_model(signals, labels, embedder="emb", generator="gen", fitted_on="test")
    path = tmp_path / "refusal_models.json"
    path.write_text(json.dumps({"models": [model.as_dict()]}))
    assert load_refusal_model("emb", "gen", path) == model
    assert load_refusal_model("emb+onnx-int8", "gen", path) == model  # the fp32 model's decision
    assert load_refusal_model("emb", "other", path) is None
    assert load_refusal_model("emb", "gen", tmp_path / "missing.json") is None
    own = dataclasses.replace(model, embedder="emb+onnx-int8", threshold=0.9)
    path.write_text(json.dumps({"models": [model.as_dict(), own.as_dict()]}))
    assert load_refusal_model("emb+onnx-int8", "gen", path) == own  # its own decision comes first
    assert load_refusal_model("emb+onnx", "gen", path) == model
    assert load_refusal_model("emb", "gen", path) == model
    int8_only = dataclasses.replace(model, embedder="emb+onnx-int8", generator="big")
    path.write_text(json.dumps({"models": [model.as_dict(), int8_only.as_dict()]}))
    assert load_refusal_model("emb", "big", path) == int8_only  # another backend of the same model
    assert load_refusal_model("emb+onnx", "big", path) == int8_only
    assert load_refusal_model("embx", "big", path) is None  # another model: its cosines differ
    stale = model.as_dict() | {"features": ["relevance"]}
    path.write_text(json.dumps({"models": [stale]}))
    assert load_refusal_model("emb", "gen", path) is None  # fitted on other features


def test_shipped_models_use_this_versions_features():
    shipped = Path(__file__).resolve().parents[2] / "rag" / "refusal_models.json"
    for entry in json.loads(shipped.read_text())["models"]:
        assert entry["features"] == list(FEATURES)
        assert load_refusal_model(entry["embedder"], entry["generator"]) is not None


def test_every_bundled_generator_has_a_decision_for_the_default_embedder_on_every_backend():
    """Without one, a bundled generator would answer behind retrieval's gate alone."""
    from ingest.embedders import embedder_name
    from ingest.registry import BUNDLED
    from ingest.settings import EMBED_BACKENDS, Settings

    generators = [name for name, spec in BUNDLED.items() if spec.role == "generator"]
    assert generators and len(EMBED_BACKENDS) >= 3
    for backend in EMBED_BACKENDS:
        embedder = embedder_name(Settings(embed_backend=backend))
        for generator in generators:
            assert load_refusal_model(embedder, generator) is not None, (embedder, generator)


def test_overlap_counts_question_words_in_the_passages():
    from ingest.records import Passage

    p = Passage("c", "f.txt", "El voltaje máximo de A1 es 16 V.", None, "", "es", 1.0, 1)
    assert overlap("¿Cuál es el voltaje máximo de A1?", [p]) == 1.0
    assert overlap("¿Cuál es la garantía?", [p]) == 0.0
    assert overlap("¿?", [p]) == 1.0
