"""Faster embedding backends vs fp32: speed on chunk-sized texts and retrieval quality on the dev set.

Quality is the MODELS.md protocol: each dev question (``eval/faq-dev/questions.jsonl``) against
all the dev answers as documents, the gold being its own answer; nDCG@10 and R@1 per language,
through each backend's ``embed_queries`` / ``embed_documents`` (the models' query and document
prompts). Speed is ``embed_documents`` of the longest answers cut to ``--chunk-tokens`` tokens
(chunk-sized texts, as ingestion embeds them), best of ``--repeat`` rounds that interleave the
backends (in alternating order), so a busy moment of the shared machine hits all of them; the
load average is recorded with each round.

Backends: ``fp32`` (torch, the default), ``int8`` / ``int8-pc`` (torch dynamic quantization of every
Linear layer, ``torch.ao.quantization.quantize_dynamic``, per tensor / per output channel),
``int8-mixed`` (per channel, except the feed-forward output projections, kept fp32), and ``onnx`` /
``onnx-int8``: docqa's own ``ingest.embed_onnx.OnnxEmbedder`` (the ``embed_backend`` setting), which
exports the model once into ``<models_dir>/.derived`` (the time of a first export is recorded).

    python bench/bench_embed_backends.py --backends fp32 onnx onnx-int8 int8-pc             # MiniLM
    python bench/bench_embed_backends.py --embedder embeddinggemma-300m --backends fp32 onnx onnx-int8
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from ingest.embed import SentenceTransformerEmbedder
from ingest.registry import resolve_model
from ingest.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"
QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faq-dev" / "questions.jsonl"
TORCH = ("fp32", "int8", "int8-pc", "int8-mixed")
ONNX = ("onnx", "onnx-int8")


def _load(
    path: str, backend: str, models_dir: Path, threads: int
) -> tuple[SentenceTransformerEmbedder, dict]:
    """The embedder for ``backend`` and facts about its loading (time, export, size on disk)."""
    import torch

    start, wall = time.perf_counter(), time.time()
    if backend in ONNX:
        from ingest.embed_onnx import DERIVED, OnnxEmbedder

        cache = models_dir / DERIVED
        folder = cache / Path(path).name / backend
        embedder = OnnxEmbedder(path, cache_dir=cache, backend=backend, threads=threads)
        info = {
            "load_s": time.perf_counter() - start,
            "exported_now": folder.stat().st_mtime >= wall,  # else the cached export was used
            "disk_mb": sum(p.stat().st_size for p in folder.iterdir()) / 1e6,
            "ort_threads": threads or os.cpu_count(),
        }
        return embedder, info
    if backend not in TORCH:
        raise ValueError(f"unknown backend {backend}")
    embedder = SentenceTransformerEmbedder(path, threads=threads)
    model = embedder._model
    if backend == "int8":  # one scale per weight matrix
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    elif backend == "int8-pc":  # one scale per output channel: finer, usually more accurate
        spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
        model = torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
    elif backend == "int8-mixed":  # per channel, but the FFN output projections stay fp32
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        spec = {
            n: qconfig for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and _quantize(n)
        }
        model = torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
    embedder._model = model  # the same prompts, batching and normalisation as the product's path
    return embedder, {"load_s": time.perf_counter() - start, "torch_threads": torch.get_num_threads()}


def _quantize(name: str) -> bool:
    """False for a feed-forward block's output projection, whose inputs carry large outliers.

    >>> _quantize("0.auto_model.encoder.layer.3.output.dense"), _quantize("...attention.output.dense")
    (False, True)
    """
    return not (name.endswith("down_proj") or (name.endswith("output.dense") and "attention" not in name))


def _quality(embedder, rows: list[dict]) -> dict[str, dict[str, float]]:
    docs = embedder.embed_documents([r["answer"] for r in rows])
    queries = embedder.embed_queries([r["question"] for r in rows])
    scores = queries @ docs.T
    out: dict[str, dict[str, float]] = {}
    for lang in ("en", "es"):
        idx = [i for i, r in enumerate(rows) if r["lang"] == lang]
        ranks = [int((scores[i] > scores[i, i]).sum()) + 1 for i in idx]
        out[lang] = {
            "ndcg@10": sum(1 / math.log2(r + 1) for r in ranks if r <= 10) / len(ranks),
            "r@1": sum(r == 1 for r in ranks) / len(ranks),
            "questions": len(ranks),
        }
    return out


def _speed(embedder, texts: list[str]) -> float:
    """Chunks per second of one ``embed_documents`` (after a short warm-up)."""
    embedder.embed_documents(texts[:4])
    start = time.perf_counter()
    embedder.embed_documents(texts)
    return len(texts) / (time.perf_counter() - start)


def _chunk_texts(embedder, rows: list[dict], count: int, tokens: int) -> list[str]:
    """The ``count`` longest answers, each cut to its first ``tokens`` tokens."""
    texts = sorted((r["answer"] for r in rows), key=len)[-count:]
    out = []
    for text in texts:
        spans = embedder.token_spans(text)
        out.append(text[: spans[min(tokens, len(spans)) - 1][1]] if spans else text)
    return out


def _versions() -> dict[str, str]:
    import onnxruntime
    import sentence_transformers
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpus": str(os.cpu_count()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--backends", nargs="+", default=["fp32", "onnx", "onnx-int8", "int8-pc"])
    parser.add_argument("--speed-texts", type=int, default=96)
    parser.add_argument("--chunk-tokens", type=int, default=None, help="default: the chunk_tokens setting")
    parser.add_argument("--repeat", type=int, default=3, help="speed rounds; the best counts")
    parser.add_argument("--limit", type=int, default=0, help="first N dev questions only (0: all)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: results/embed_backends-EMBEDDER.json"
    )
    args = parser.parse_args()
    settings = load_settings()
    out_path = args.out or RESULTS / f"embed_backends-{args.embedder}.json"
    chunk_tokens = args.chunk_tokens or settings.chunk_tokens
    path = str(resolve_model(args.embedder, "embedder", settings.models_dir))
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    load_start = os.getloadavg()
    models, loading = {}, {}
    for backend in args.backends:
        try:
            models[backend], loading[backend] = _load(
                path, backend, Path(settings.models_dir), settings.threads
            )
        except (ImportError, ValueError, RuntimeError, OSError) as err:
            print(f"{backend}: unavailable ({type(err).__name__}: {str(err)[:160]})", file=sys.stderr)
        print(f"{backend}: loaded {loading.get(backend)}", file=sys.stderr)
    texts = _chunk_texts(next(iter(models.values())), rows, args.speed_texts, chunk_tokens)
    # Speed: rounds interleave the backends (alternating order), so a busy moment hits all of them.
    best, rounds = dict.fromkeys(models, 0.0), []
    for i in range(args.repeat):
        order = list(models) if i % 2 == 0 else list(reversed(models))
        measured = {b: _speed(models[b], texts) for b in order}
        rounds.append({"chunks_per_s": measured, "loadavg": os.getloadavg()})
        print(f"round {i + 1}: {rounds[-1]}", file=sys.stderr)
        for b, value in measured.items():
            best[b] = max(best[b], value)
    results = {}
    for b, m in models.items():
        start = time.perf_counter()
        results[b] = {"chunks_per_s": best[b], **_quality(m, rows), "quality_s": time.perf_counter() - start}
        results[b].update(loading[b])
        print(
            f"{b}: quality {results[b]['en']['ndcg@10']:.4f} / {results[b]['es']['ndcg@10']:.4f}",
            file=sys.stderr,
        )
    base = results.get("fp32")
    print(
        f"\n{'backend':10} {'chunks/s':>9} {'speed-up':>9} {'nDCG@10 en':>11} {'es':>6} {'Δ en %':>7} {'Δ es %':>7}"
    )
    for name, r in results.items():
        if base:
            r["speedup"] = r["chunks_per_s"] / base["chunks_per_s"]
            r["ndcg_delta_pct"] = {
                lang: 100 * (r[lang]["ndcg@10"] / base[lang]["ndcg@10"] - 1) for lang in ("en", "es")
            }
        delta = r.get("ndcg_delta_pct", {"en": math.nan, "es": math.nan})
        print(f"{name:10} {r['chunks_per_s']:9.2f} {r.get('speedup', math.nan):9.2f} {r['en']['ndcg@10']:11.4f} "
              f"{r['es']['ndcg@10']:6.4f} {delta['en']:7.2f} {delta['es']:7.2f}")  # fmt: skip
    report = {
        "embedder": args.embedder,
        "command": " ".join(sys.argv),
        "speed_texts": len(texts),
        "chunk_tokens": chunk_tokens,
        "dev_questions": len(rows),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "versions": _versions(),
        "rounds": rounds,
        "results": results,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"\nwritten to {out_path}")


if __name__ == "__main__":
    main()
