"""ONNX Runtime embedder with the real MiniLM model: same vectors as torch, one cached export."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest import registry
from ingest.errors import ConfigError, ModelError
from ingest.settings import Settings, load_settings

TEXTS = [
    "How do I measure a voltage with the A1 input?",
    "¿Qué rango de voltaje admiten las entradas A1 y A2?",
    "WeeChat: /server add libera irc.libera.chat/6697 -tls",
    "La señal del generador aparece en el osciloscopio; ajuste la base de tiempo. " * 40,  # truncated
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory, models_dir) -> Path:
    """A private export cache with MiniLM's fp32 export made once for this module."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    if not registry.is_fetched("all-minilm-l6-v2", models_dir):
        pytest.skip(f"all-minilm-l6-v2 is not fetched in {models_dir}")
    return tmp_path_factory.mktemp("derived")


def _onnx(models_dir: Path, cache: Path, backend: str = "onnx"):
    from ingest.embed_onnx import OnnxEmbedder

    folder = registry.model_path("all-minilm-l6-v2", models_dir)
    return OnnxEmbedder(str(folder), cache_dir=cache, backend=backend, name="all-minilm-l6-v2")


@pytest.fixture(scope="module")
def minilm_torch(models_dir):
    """MiniLM on torch (fp32), whatever the default backend is."""
    from ingest.embedders import load_embedder

    return load_embedder(Settings(embedder="all-minilm-l6-v2", models_dir=models_dir, embed_backend="torch"))


@pytest.mark.slow
def test_onnx_vectors_and_tokens_match_torch(onnx_cache, models_dir, minilm_torch):
    minilm = minilm_torch
    onnx = _onnx(models_dir, onnx_cache)
    assert len(minilm.token_spans(TEXTS[3])) > minilm.max_tokens  # the long text is cut
    for embed in ("embed_documents", "embed_queries"):
        got, want = getattr(onnx, embed)(TEXTS), getattr(minilm, embed)(TEXTS)
        assert got.dtype == np.float32 and got.shape == want.shape == (len(TEXTS), 384)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert (got * want).sum(axis=1).min() >= 0.9999
    assert onnx.embed_documents(TEXTS[:1]) @ onnx.embed_documents(TEXTS[1:2]).T < 0.9999  # not constant
    assert onnx.embed_queries([]).shape == (0, 384)
    assert (onnx.name, onnx.dim, onnx.max_tokens) == (minilm.name, minilm.dim, minilm.max_tokens)
    for text in TEXTS:
        assert onnx.token_spans(text) == minilm.token_spans(text)


@pytest.mark.slow
def test_second_load_reuses_the_export_and_a_bad_stamp_exports_again(onnx_cache, models_dir, monkeypatch):
    from ingest import embed_onnx

    model_folder = registry.model_path("all-minilm-l6-v2", models_dir)
    files = sorted(model_folder.rglob("*"))
    first = _onnx(models_dir, onnx_cache)
    folder = first.path.parent
    assert folder == onnx_cache / "all-minilm-l6-v2" / "onnx"
    assert sorted(model_folder.rglob("*")) == files and registry.verify_folder(model_folder) == []
    mtime = first.path.stat().st_mtime_ns
    golden = onnx_cache / "golden"
    shutil.copytree(folder, golden)
    calls = []

    def counting_export(model, path):  # a re-export, made cheap: copy the files of the first one
        calls.append(path)
        for name in ("model.onnx", "model.onnx.data"):
            shutil.copy(golden / name, path.parent / name)

    monkeypatch.setattr(embed_onnx, "export_onnx", counting_export)
    _onnx(models_dir, onnx_cache)
    assert calls == [] and first.path.stat().st_mtime_ns == mtime

    stamp = folder / embed_onnx.STAMP
    saved = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**saved, "torch": "0.0.1"}))  # made by another torch
    again = _onnx(models_dir, onnx_cache)
    assert len(calls) == 1 and json.loads(stamp.read_text()) == saved
    assert (again.embed_queries(TEXTS[:2]) * first.embed_queries(TEXTS[:2])).sum(axis=1).min() >= 0.9999

    (folder / "model.onnx.data").write_bytes(b"truncated")  # the stamp is right, a file is not
    _onnx(models_dir, onnx_cache)
    assert len(calls) == 2 and (folder / "model.onnx.data").stat().st_size > 1e6

    stamp.write_text("{not json")
    _onnx(models_dir, onnx_cache)
    assert len(calls) == 3 and json.loads(stamp.read_text()) == saved
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".onnx-")]  # no work folder left
    shutil.rmtree(golden)


@pytest.mark.slow
def test_int8_has_its_own_name_and_export(onnx_cache, models_dir, minilm_torch):
    minilm = minilm_torch
    int8 = _onnx(models_dir, onnx_cache, "onnx-int8")
    assert int8.name == "all-minilm-l6-v2+onnx-int8" != minilm.name
    assert int8.path.parent.name == "onnx-int8" and int8.path.stat().st_size < 0.8 * 90e6
    cosine = (int8.embed_documents(TEXTS) * minilm.embed_documents(TEXTS)).sum(axis=1)
    assert cosine.min() > 0.95 and cosine.max() < 0.9999  # close to fp32, but not the same vectors


def test_load_embedder_dispatch_errors(tmp_path, monkeypatch):
    from ingest.embed_onnx import OnnxEmbedder
    from ingest.embedders import load_embedder

    with pytest.raises(ModelError, match="local model folder"):
        OnnxEmbedder("some/hub-name", cache_dir=tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ModelError, match="pip install onnxruntime"):
        load_embedder(Settings(embedder=str(tmp_path), models_dir=tmp_path, embed_backend="onnx"))


def test_settings_embed_backend(tmp_path):
    assert Settings().embed_backend == "onnx-int8"  # the default: ~3x torch, nDCG@10 within 1 %
    assert load_settings(env={"DOCQA_EMBED_BACKEND": "onnx-int8"}).embed_backend == "onnx-int8"
    config = tmp_path / "docqa.toml"
    config.write_text('embed_backend = "onnx"\n')
    assert load_settings(config, env={}).embed_backend == "onnx"
    for bad in ("tensorrt", "ONNX", ""):
        with pytest.raises(ConfigError, match="embed_backend"):
            Settings(embed_backend=bad)
    with pytest.raises(ConfigError, match="torch, onnx, onnx-int8"):
        load_settings(env={"DOCQA_EMBED_BACKEND": "int4"})


def test_model_identity_follows_the_files(tmp_path):
    from ingest.embed_onnx import model_identity

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    before = model_identity(folder)
    assert model_identity(folder) == before
    (folder / "config.json").write_text('{"changed": 1}')
    assert model_identity(folder) != before


@pytest.mark.slow
def test_the_backend_setting_reaches_ingest_and_the_engine(tmp_path, models_dir):
    """DOCQA_EMBED_BACKEND=onnx-int8: the CLI indexes with it, the engine queries with it, and
    torch refuses that index with the fix (int8 vectors are another embedder)."""
    import subprocess

    from ingest.errors import EmbedderMismatch
    from rag.engine import open_engine

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    if not registry.is_fetched("all-minilm-l6-v2", models_dir):
        pytest.skip(f"all-minilm-l6-v2 is not fetched in {models_dir}")
    private = tmp_path / "models"  # the exports land in private/.derived, not in the user's cache
    shutil.copytree(registry.model_path("all-minilm-l6-v2", models_dir), private / "all-minilm-l6-v2")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "power.md").write_text("# Power\n\nThe battery lasts ten hours on a full charge.")
    (docs / "lens.md").write_text("# Care\n\nClean the lens with a soft cloth.")
    env = {**os.environ, "DOCQA_MODELS_DIR": str(private), "DOCQA_EMBED_BACKEND": "onnx-int8"}
    args = ["ingest", str(docs), "--index", str(tmp_path / "ix"), "--embedder", "all-minilm-l6-v2", "--json"]
    result = subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert (
        json.loads((tmp_path / "ix" / "manifest.json").read_text())["embedder"]
        == "all-minilm-l6-v2+onnx-int8"
    )
    assert (private / ".derived" / "all-minilm-l6-v2" / "onnx-int8").is_dir()
    assert (
        "exporting all-minilm-l6-v2 for embed_backend 'onnx-int8', once" in result.stderr
    )  # said, not silent

    settings = Settings(index_dir=tmp_path / "ix", models_dir=private, embedder="all-minilm-l6-v2")
    with open_engine(settings.replace(embed_backend="onnx-int8")) as engine:
        assert engine.retrieve("How long does the battery last?", k=1)[0].source == "power.md"
    with pytest.raises(EmbedderMismatch, match=r"all-minilm-l6-v2\+onnx-int8.*embed_backend = 'onnx-int8'"):
        open_engine(settings.replace(embed_backend="torch"))


@pytest.mark.slow
def test_models_fetch_exports_the_embedder_once(tmp_path, models_dir):
    """'docqa models fetch' exports the embedders for the default embed_backend (onnx-int8) with a
    message and a peak-memory figure; a second fetch finds the export by its stamp."""
    import subprocess

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    if not registry.is_fetched("all-minilm-l6-v2", models_dir):
        pytest.skip(f"all-minilm-l6-v2 is not fetched in {models_dir}")
    private = tmp_path / "models"
    shutil.copytree(registry.model_path("all-minilm-l6-v2", models_dir), private / "all-minilm-l6-v2")
    env = {k: v for k, v in os.environ.items() if k != "DOCQA_EMBED_BACKEND"}
    args = [sys.executable, "-m", "rag", "models", "fetch", "all-minilm-l6-v2", "--models-dir", str(private)]
    first = subprocess.run(args, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert "preparing embed_backend 'onnx-int8'" in first.stderr
    assert "all-minilm-l6-v2: exported in" in first.stdout and "peak memory" in first.stdout, first.stdout
    assert (private / ".derived" / "all-minilm-l6-v2" / "onnx-int8" / "model.onnx").is_file()
    second = subprocess.run(args, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr
    assert "all-minilm-l6-v2: export already there for onnx-int8" in second.stdout, second.stdout
    assert "preparing" not in second.stderr  # nothing to announce
    skipped = subprocess.run([*args, "--no-export"], capture_output=True, text=True, env=env)
    assert skipped.returncode == 0 and "preparing" not in skipped.stderr, skipped.stderr
    assert "exported in" not in skipped.stdout and "export already" not in skipped.stdout


def test_same_model_other_backend_says_which_setting_opens_the_index(tmp_path):
    from ingest.embedders import check_embedder
    from ingest.errors import EmbedderMismatch

    with pytest.raises(EmbedderMismatch, match=r"embed_backend = 'torch'.*DOCQA_EMBED_BACKEND=torch") as err:
        check_embedder(tmp_path, "embeddinggemma-300m", 768, name="embeddinggemma-300m+onnx-int8")
    assert "docqa ingest FOLDER --index NEWDIR" in str(err.value)
    with pytest.raises(EmbedderMismatch, match=r"embed_backend = 'onnx-int8'"):
        check_embedder(tmp_path, "embeddinggemma-300m+onnx-int8", 768, name="embeddinggemma-300m")
    with pytest.raises(EmbedderMismatch, match="--embedder all-minilm-l6-v2"):  # another model
        check_embedder(tmp_path, "all-minilm-l6-v2", 384, name="embeddinggemma-300m+onnx-int8")
    check_embedder(tmp_path, "embeddinggemma-300m", 768, name="embeddinggemma-300m")


@pytest.mark.slow
def test_embeddinggemma_reads_the_heading_as_its_title(gemma, minilm):
    """EmbeddingGemma's document prompt has a title field: a heading changes the vector and brings
    it nearer a question about that heading; no heading is its "title: none", as before. MiniLM
    has no title field and ignores titles."""
    assert gemma.name.startswith("embeddinggemma-300m") and gemma.titles and not minilm.titles
    texts = ["Connect the red probe here and press start."]
    plain = gemma.embed_documents(texts)
    np.testing.assert_allclose(gemma.embed_documents(texts, titles=[""]), plain, atol=1e-6)
    titled = gemma.embed_documents(texts, titles=["Oscilloscope > Input A1"])
    assert 0.5 < float(titled[0] @ plain[0]) < 0.999
    question = gemma.embed_queries(["How do I use the oscilloscope input A1?"])[0]
    assert titled[0] @ question > plain[0] @ question + 0.02
    np.testing.assert_allclose(
        minilm.embed_documents(texts, titles=["Oscilloscope"]), minilm.embed_documents(texts)
    )


@pytest.mark.slow
def test_an_int8_vector_does_not_depend_on_the_batch(onnx_cache, models_dir):
    """Dynamic int8 quantisation scales a whole input tensor: texts are run one at a time, so a
    text gets the same vector whatever it was embedded with (a resumed ingestion equals a fresh one)."""
    int8 = _onnx(models_dir, onnx_cache, "onnx-int8")
    alone = np.concatenate([int8.embed_documents([t]) for t in TEXTS])
    np.testing.assert_array_equal(int8.embed_documents(TEXTS), alone)
    np.testing.assert_array_equal(int8.embed_documents(TEXTS[::-1])[::-1], alone)
