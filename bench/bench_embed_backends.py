"""Faster embedding backends vs fp32: speed on chunk-sized texts and retrieval quality on the dev set.

Quality is the MODELS.md protocol: each dev question (``eval/faq-dev/questions.jsonl``) against
all the dev answers as documents, the gold being its own answer; nDCG@10 and R@1 per language.
Speed is plain ``encode`` of the longest answers (chunk-sized texts), best of ``--repeat``
rounds that interleave the backends.

Backends: ``fp32`` (torch, the default), ``int8`` / ``int8-pc`` (torch dynamic quantization of every
Linear layer, ``torch.ao.quantization.quantize_dynamic``, per tensor / per output channel),
``int8-mixed`` (per channel, except the feed-forward output projections, kept fp32), and ``onnx`` / ``onnx-int8`` when
onnxruntime and optimum are installed. Note: on 2026-11-27 ``optimum-onnx`` 0.1.0 pins transformers 4.x
(pip downgrades docqa's transformers 5), so the ONNX rows need a separate environment.

    python bench/bench_embed_backends.py                      # MiniLM
    python bench/bench_embed_backends.py --embedder embeddinggemma-300m --backends fp32 int8
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ingest.models import resolve_model
from ingest.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"
QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faq-dev" / "questions.jsonl"


def _load(path: str, backend: str):
    import torch
    from sentence_transformers import SentenceTransformer

    if backend in ("fp32", "int8", "int8-pc", "int8-mixed"):
        model = SentenceTransformer(path, device="cpu", local_files_only=True)
        if backend == "int8":  # one scale per weight matrix
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        elif backend == "int8-pc":  # one scale per output channel: finer, usually more accurate
            spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
            model = torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
        elif backend == "int8-mixed":  # per channel, but the FFN output projections stay fp32
            qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
            spec = {
                n: qconfig
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and _quantize(n)
            }
            model = torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
        return model
    if backend not in ("onnx", "onnx-int8"):
        raise ValueError(f"unknown backend {backend}")
    # Exports write beside the model: work on a copy, never in the verified model cache.
    copy = Path(tempfile.mkdtemp(prefix="bench-onnx-")) / Path(path).name
    shutil.copytree(path, copy)
    model = SentenceTransformer(str(copy), device="cpu", local_files_only=True, backend="onnx")
    if backend == "onnx":
        return model
    from sentence_transformers import export_dynamic_quantized_onnx_model

    model.save_pretrained(str(copy))
    export_dynamic_quantized_onnx_model(model, "avx2", str(copy))
    return SentenceTransformer(
        str(copy), device="cpu", local_files_only=True, backend="onnx",
        model_kwargs={"file_name": "onnx/model_qint8_avx2.onnx"},
    )  # fmt: skip


def _quantize(name: str) -> bool:
    """False for a feed-forward block's output projection, whose inputs carry large outliers.

    >>> _quantize("0.auto_model.encoder.layer.3.output.dense"), _quantize("...attention.output.dense")
    (False, True)
    """
    return not (name.endswith("down_proj") or (name.endswith("output.dense") and "attention" not in name))


def _prompt(model, *names: str) -> str | None:
    prompts = model.prompts or {}
    return next((prompts[n] for n in names if prompts.get(n)), None)


def _quality(model, rows: list[dict]) -> dict[str, dict[str, float]]:
    docs = model.encode([r["answer"] for r in rows], prompt=_prompt(model, "document", "Retrieval-document"),
                        normalize_embeddings=True, batch_size=16)  # fmt: skip
    queries = model.encode([r["question"] for r in rows], prompt=_prompt(model, "query", "Retrieval-query"),
                           normalize_embeddings=True, batch_size=16)  # fmt: skip
    scores = queries @ docs.T
    out: dict[str, dict[str, float]] = {}
    for lang in ("en", "es"):
        idx = [i for i, r in enumerate(rows) if r["lang"] == lang]
        ranks = [int((scores[i] > scores[i, i]).sum()) + 1 for i in idx]
        out[lang] = {
            "ndcg@10": sum(1 / math.log2(r + 1) for r in ranks if r <= 10) / len(ranks),
            "r@1": sum(r == 1 for r in ranks) / len(ranks),
        }
    return out


def _speed(model, texts: list[str]) -> float:
    """Chunks per second of one plain ``encode`` (after a short warm-up)."""
    prompt = _prompt(model, "document", "Retrieval-document")
    model.encode(texts[:16], prompt=prompt, batch_size=16)
    start = time.perf_counter()
    model.encode(texts, prompt=prompt, batch_size=16, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument(
        "--backends", nargs="+", default=["fp32", "int8", "int8-pc", "int8-mixed", "onnx", "onnx-int8"]
    )
    parser.add_argument("--speed-texts", type=int, default=160)
    parser.add_argument("--repeat", type=int, default=3, help="speed rounds; the best counts")
    parser.add_argument("--out", type=Path, default=RESULTS / "embed_backends.json")
    args = parser.parse_args()
    settings = load_settings()
    path = str(resolve_model(args.embedder, "embedder", settings.models_dir))
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = sorted((r["answer"] for r in rows), key=len)[-args.speed_texts :]
    models = {}
    for backend in args.backends:
        try:
            models[backend] = _load(path, backend)
        except (ImportError, ValueError, RuntimeError, OSError) as err:
            print(f"{backend}: unavailable ({type(err).__name__}: {str(err)[:160]})", file=sys.stderr)
    # Speed: rounds interleave the backends, so a busy moment of the machine hits all of them.
    best = dict.fromkeys(models, 0.0)
    for _ in range(args.repeat):
        for backend, model in models.items():
            best[backend] = max(best[backend], _speed(model, texts))
    results = {b: {"chunks_per_s": best[b], **_quality(m, rows)} for b, m in models.items()}
    base = results.get("fp32")
    print(
        f"\n{'backend':10} {'chunks/s':>9} {'speed-up':>9} {'nDCG@10 en':>11} {'es':>6} {'R@1 en':>7} {'es':>6}"
    )
    for name, r in results.items():
        speedup = r["chunks_per_s"] / base["chunks_per_s"] if base else float("nan")
        if base:
            r["speedup"] = speedup
            r["ndcg_delta_pct"] = {
                lang: 100 * (r[lang]["ndcg@10"] / base[lang]["ndcg@10"] - 1) for lang in ("en", "es")
            }
        print(f"{name:10} {r['chunks_per_s']:9.2f} {speedup:9.2f} {r['en']['ndcg@10']:11.3f} "
              f"{r['es']['ndcg@10']:6.3f} {r['en']['r@1']:7.3f} {r['es']['r@1']:6.3f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"embedder": args.embedder, "command": " ".join(sys.argv), "results": results},
                                   indent=1))  # fmt: skip
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
