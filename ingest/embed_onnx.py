"""The same sentence-transformers embedder run by ONNX Runtime (fp32, or int8 weights).

``OnnxEmbedder`` loads the sentence-transformers model once, exports its whole forward pass
(transformer, pooling, dense layers, normalisation) to ONNX on first use and then runs it with
ONNX Runtime; prompts, truncation and token spans are the sentence-transformers model's own
(it is a ``SentenceTransformerEmbedder`` whose forward pass is replaced). The torch weights are
dropped once the session exists.

Exports are derived data and never written inside the verified model folder: they live in
``<models_dir>/.derived/<model folder>/<backend>/`` with ``docqa-derived.json``, which names the
source model's identity and the torch / onnxruntime versions; a missing or different stamp (or a
file of the wrong size) means export again. A folder only appears complete (built beside it and
renamed) and a file lock makes concurrent first uses safe.

``onnx`` gives the same vectors as torch (cosine >= 0.9999, checked after each export), so it
keeps the embedder's name and its indexes; ``onnx-int8`` (dynamic int8 quantisation of the
weights) gives different vectors, so its name is ``<name>+onnx-int8``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ingest.embed import SentenceTransformerEmbedder, backend_name
from ingest.errors import ModelError

DERIVED = ".derived"
STAMP = "docqa-derived.json"
MODEL_FILE = "model.onnx"
BACKENDS = ("onnx", "onnx-int8")
# Dynamic int8 quantisation (onnxruntime.quantization.quantize_dynamic) of the MatMul weights,
# one scale per output channel.
INT8_OPTIONS = {"per_channel": True, "reduce_range": False, "op_types_to_quantize": ["MatMul"]}
_FORMAT = 1


class OnnxEmbedder(SentenceTransformerEmbedder):
    """A sentence-transformers model from a local folder, run by ONNX Runtime on the CPU.

    Args:
        model: a local sentence-transformers folder.
        cache_dir: where exports live (``<models_dir>/.derived``).
        backend: "onnx" (fp32) or "onnx-int8".
        name: identity for the manifest; defaults to the folder name ("+onnx-int8" is added for
            int8, whose vectors differ from torch's).
        batch_size: texts per forward pass.
        threads: ONNX Runtime intra-op threads (0: the number of CPUs).
    """

    def __init__(
        self,
        model: str,
        *,
        cache_dir: Path,
        backend: str = "onnx",
        name: str | None = None,
        batch_size: int = 16,
        threads: int = 0,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError(
                f"embed_backend {backend!r} needs onnxruntime: pip install onnxruntime onnx onnxscript, "
                "or use embed_backend 'torch'"
            ) from None
        if backend not in BACKENDS:
            raise ModelError(f"unknown ONNX backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if not Path(model).is_dir():
            raise ModelError(f"the ONNX backends need a local model folder, not {model!r}")
        super().__init__(model, name=name, batch_size=batch_size)
        self.name = backend_name(self.name, backend)
        if any(getattr(m, "include_prompt", True) is False for m in self._model):
            raise ModelError(f"{model}: pooling without the prompt tokens is not exported; use torch")
        self.backend = backend
        self.path = ensure_export(self._model, Path(model), Path(cache_dir), backend)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        # Idle threads sleep instead of spinning: on a machine shared with other work, spinning
        # threads took CPU from the busy ones (EmbeddingGemma, load 4.5 on 2 cores: 1.15 vs 1.54
        # chunks/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._model.to("meta")  # the weights are no longer needed; tokenizer and prompts stay

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # less padding per batch
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # int8: one text per run. Dynamic quantisation scales the activations of the whole input
        # tensor, so a text's vector depended on the batch it was in (up to 0.034 per component
        # on EmbeddingGemma): a resumed ingestion differed from a fresh one. Alone, a text always
        # gets the same vector, at the same speed here (6.7 vs 6.3-6.7 chunks/s, no padding).
        step = 1 if self.backend == "onnx-int8" else self.batch_size
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            out[rows] = run(self._session, self._model, [texts[i] for i in rows], prompt)
        return _normalise(out)


def run(session, model, texts: list[str], prompt: str = "") -> np.ndarray:
    """One batch through an ONNX session, tokenized exactly as sentence-transformers does."""
    features = model.preprocess(texts, prompt=prompt or None)
    feed = {k: features[k].numpy().astype(np.int64) for k in ("input_ids", "attention_mask")}
    return session.run(None, feed)[0]


def ensure_export(model, source: Path, cache_dir: Path, backend: str) -> Path:
    """The ONNX file of ``source`` for ``backend``, exported first if missing or stale."""
    from filelock import FileLock

    folder = cache_dir / source.name / backend
    expected = _stamp(source, backend)
    if _valid(folder, expected):
        return folder / MODEL_FILE
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{backend}.lock")):
        if not _valid(folder, expected):  # another process may have exported while we waited
            work = Path(tempfile.mkdtemp(prefix=f".{backend}-", dir=folder.parent))
            work.chmod(0o755)
            print(  # minutes of silence otherwise: EmbeddingGemma's export took 3.5 min here
                f"docqa: exporting {source.name} for embed_backend {backend!r}, once "
                f"(a few minutes for a large model) into {folder}",
                file=sys.stderr,
                flush=True,
            )
            try:
                if backend == "onnx":
                    export_onnx(model, work / MODEL_FILE)
                else:
                    _quantize(ensure_export(model, source, cache_dir, "onnx"), work / MODEL_FILE)
                expected["files"] = {p.name: p.stat().st_size for p in work.iterdir()}
                (work / STAMP).write_text(json.dumps(expected, indent=1), encoding="utf-8")
                if folder.exists():
                    shutil.rmtree(folder)
                work.rename(folder)
            except (ModelError, OSError):
                raise
            except Exception as err:  # the exporter's many failure types, told as one with the fix
                raise ModelError(
                    f"cannot export {source} to ONNX ({type(err).__name__}: {err}); use embed_backend 'torch'"
                ) from err
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return folder / MODEL_FILE


def is_exported(source: Path, cache_dir: Path, backend: str) -> bool:
    """Whether ``source``'s export for ``backend`` is in ``cache_dir`` and current (no model load)."""
    folder = Path(cache_dir) / Path(source).name / backend
    return _valid(folder, _stamp(Path(source), backend))


def export_onnx(model, path: Path) -> None:
    """Export a SentenceTransformer's forward pass (ids, mask -> embedding), then check it.

    The batch and sequence axes are dynamic; the weights go to ``<path>.data`` beside it.
    """
    import onnxruntime as ort
    import torch

    class Forward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            return self.model(features)["sentence_embedding"]

    # A long text padded beside a short one, so the traced graph sees padding (and, for models
    # with a sliding attention window, a sequence longer than the window).
    texts = ["docqa " * 700, "short"]
    features = model.preprocess(texts)
    args = (features["input_ids"], features["attention_mask"])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=int(model.max_seq_length))
    model.eval()
    try:
        import onnxscript  # noqa: F401  (torch.onnx.export's exporter)
    except ImportError:
        raise ModelError("exporting to ONNX needs onnxscript: pip install onnxscript onnx") from None
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and shape-naming notes
        expected = model(dict(zip(("input_ids", "attention_mask"), args, strict=True)))["sentence_embedding"]
        torch.onnx.export(
            Forward().eval(),
            args,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            dynamo=True,
            external_data=True,
            verbose=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = run(session, model, texts)
    cosine = (_normalise(got) * _normalise(expected.numpy())).sum(axis=1)
    if cosine.min() < 0.9999:
        raise ModelError(f"ONNX export of {path.parent} differs from torch (cosine {cosine.min():.5f})")


def _quantize(fp32: Path, path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, **INT8_OPTIONS)


def _stamp(source: Path, backend: str) -> dict:
    """What an export must have been made from: the model's identity and the tool versions."""
    import onnxruntime
    import torch

    return {
        "format": _FORMAT,
        "backend": backend,
        "source": str(source),
        "source_identity": model_identity(source),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "int8_options": INT8_OPTIONS if backend == "onnx-int8" else None,
    }


def model_identity(folder: Path) -> str:
    """SHA-256 of a bundled model's stamp (it holds every file's hash), else of its file list.

    For a folder without a stamp, each file's path, size and modification time are hashed.
    """
    from ingest.registry import STAMP as MODEL_STAMP

    digest = hashlib.sha256()
    if (folder / MODEL_STAMP).is_file():
        digest.update((folder / MODEL_STAMP).read_bytes())
    else:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _valid(folder: Path, expected: dict) -> bool:
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    files = stamp.pop("files", None)
    if stamp != expected or not isinstance(files, dict) or MODEL_FILE not in files:
        return False
    try:
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except OSError:
        return False


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
