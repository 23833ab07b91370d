"""What the default embed_backend (onnx-int8) moves in what the refusal decision reads.

The refusal decision (``rag/refusal_models.json``) was fitted, leave-one-product-out, on signals
computed with EmbeddingGemma on torch; int8 weights give slightly different vectors. This script
takes two builds of the same dev documents (``eval_lopo.py build`` with ``embed_backend`` torch and
onnx-int8), asks every question of ``lopo_data.questions()`` against its own index in both, and
compares per question: the best dense relevance (the decision's ``relevance`` feature and the
retrieval gate's input), the top dense chunk, and the retrieval gate's verdict at the fitted
``min_relevance``.

    DOCQA_EMBED_BACKEND=torch python bench/eval_lopo.py build --work /work/lopo
    DOCQA_EMBED_BACKEND=onnx-int8 python bench/eval_lopo.py build --work /work/lopo-int8
    python bench/backend_shift.py --torch /work/lopo --int8 /work/lopo-int8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lopo_data

from ingest.embedders import load_embedder
from ingest.settings import load_settings
from ingest.store import open_index
from rag.refusal import load_refusal_model

RESULTS = Path(__file__).resolve().parent / "results"


def best_dense(work: Path, backend: str, questions: list) -> tuple[np.ndarray, list[str]]:
    """Each question's best dense relevance and top chunk's file, against its own index in ``work``."""
    embedder = load_embedder(load_settings(embed_backend=backend))
    vectors = embedder.embed_queries([q.question for q in questions])
    scores, top = np.zeros(len(questions)), []
    for name in sorted({q.index for q in questions}):
        with open_index(work / name, embedder_name=embedder.name) as index:
            ids = {}
            for i, q in enumerate(questions):
                if q.index == name:
                    hits = index.search_dense(vectors[i], 1)
                    scores[i] = hits[0][1] if hits else 0.0
                    ids[i] = hits[0][0] if hits else ""
            files = {c.id: c.source for c in index.get_chunks(sorted(set(ids.values()) - {""}))}
            top += [(i, files.get(c, "")) for i, c in ids.items()]
    return scores, [f for _, f in sorted(top)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", type=Path, default=Path("/work/lopo"), help="eval_lopo work folder, torch")
    parser.add_argument("--int8", type=Path, default=Path("/work/lopo-int8"), help="the same, onnx-int8")
    parser.add_argument("--generator", default=load_settings().generator)
    args = parser.parse_args()
    questions = lopo_data.questions()
    fp32, fp32_top = best_dense(args.torch, "torch", questions)
    int8, int8_top = best_dense(args.int8, "onnx-int8", questions)
    model = load_refusal_model("embeddinggemma-300m", args.generator)
    gate = model.min_relevance if model else load_settings().min_relevance
    diff = int8 - fp32
    answerable = np.array([q.answerable for q in questions])
    out = {
        "questions": len(questions),
        "answerable": int(answerable.sum()),
        "relevance_mean": {"torch": float(fp32.mean()), "onnx-int8": float(int8.mean())},
        "relevance_diff": {
            "mean": float(diff.mean()),
            "mean_abs": float(np.abs(diff).mean()),
            "p95_abs": float(np.quantile(np.abs(diff), 0.95)),
            "max_abs": float(np.abs(diff).max()),
        },
        "top_chunk_file_agrees": float(np.mean([a == b for a, b in zip(fp32_top, int8_top, strict=True)])),
        "min_relevance": gate,
        "gate_flips": {
            "answerable": int(((fp32 >= gate) != (int8 >= gate))[answerable].sum()),
            "unanswerable": int(((fp32 >= gate) != (int8 >= gate))[~answerable].sum()),
        },
        "passed_gate": {
            "torch": {
                "answerable": int((fp32 >= gate)[answerable].sum()),
                "unanswerable": int((fp32 >= gate)[~answerable].sum()),
            },
            "onnx-int8": {
                "answerable": int((int8 >= gate)[answerable].sum()),
                "unanswerable": int((int8 >= gate)[~answerable].sum()),
            },
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backend_shift.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
