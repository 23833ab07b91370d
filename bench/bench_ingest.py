"""Ingestion speed and memory against the model's own limit and against llama-index.

On (a slice of) the dev corpus, in one process and one run, with the same embedder and threads:

  (a) limit:  plain ``SentenceTransformer.encode`` of exactly the chunk texts docqa produces
              (files already read and chunked: the model alone);
  (b) docqa:  ``ingest_folder`` end to end (scan, hash, load, chunk, embed, SQLite + FTS5, FAISS);
  (c) llama-index: ``SimpleDirectoryReader`` + ``VectorStoreIndex.from_documents`` with a
              ``SentenceSplitter`` of the same size counted in the model's tokens and our embedder
              wrapped as a llama-index ``BaseEmbedding`` (passed explicitly, no global Settings);
  (d) rerun:  ``ingest_folder`` again with nothing changed.

Reports chunks/s and tokens/s (llama-index cuts smaller chunks, so compare tokens/s), the ratios
docqa/limit and docqa/llama-index, the rerun as a percentage of the full run, and peak RSS during
each phase (sampled every 50 ms). ``--rounds`` interleaves (a)-(c) and keeps the fastest of each,
which matters on a shared machine. Writes ``bench/results/ingest.json``.

    python bench/bench_ingest.py --limit-files 30 --rounds 2   # ~7 min with MiniLM on 2 cores
    python bench/bench_ingest.py --embedder embeddinggemma-300m --limit-files 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from ingest.chunk import chunk_limit, chunk_sections
from ingest.embedders import load_embedder
from ingest.load import load_file
from ingest.pipeline import ingest_folder
from ingest.registry import resolve_model
from ingest.scan import file_sha256
from ingest.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"
DEV_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faq-dev" / "corpus"


class PeakRSS:
    """Resident memory of this process (MB) at the start of the block and its peak during it, and
    the CPU seconds it used (all threads): steadier than wall time on a shared machine."""

    def __enter__(self) -> PeakRSS:
        self._proc, self._stop = psutil.Process(), threading.Event()
        self.start = self.peak = self._proc.memory_info().rss / 1e6
        self._cpu = sum(self._proc.cpu_times()[:2])
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss / 1e6)
            self._stop.wait(0.05)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss / 1e6)
        self.cpu = sum(self._proc.cpu_times()[:2]) - self._cpu


def _slice(corpus: Path, limit: int | None, dest: Path) -> list[Path]:
    """Copy every n-th file (so all sub-corpora are represented) into ``dest``."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    if limit and limit < len(files):
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    for f in files:
        target = dest / f.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    return [dest / f.relative_to(corpus) for f in files]


def _chunk_texts(files: list[Path], root: Path, embedder, settings) -> list[str]:
    size, overlap = chunk_limit(embedder.max_tokens, settings.chunk_tokens, settings.chunk_overlap)
    texts = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        sections = load_file(f, rel)
        texts += [
            c.text for c in chunk_sections(sections, embedder, size, overlap, file_sha256=file_sha256(f))
        ]
    return texts


def _limit(model_path: str, texts: list[str], prompt: str, batch: int) -> float:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
    model.encode(texts[:batch], batch_size=batch, prompt=prompt or None)  # warm-up
    start = time.perf_counter()
    model.encode(texts, batch_size=batch, normalize_embeddings=True, prompt=prompt or None)
    return time.perf_counter() - start


def _llama_index(folder: Path, embedder, size: int, overlap: int, batch: int) -> tuple[float, int, int]:
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.node_parser import SentenceSplitter

    class Wrapped(BaseEmbedding):
        def _get_text_embedding(self, text: str) -> list[float]:
            return embedder.embed_documents([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed_documents(texts).tolist()

        def _get_query_embedding(self, query: str) -> list[float]:
            return embedder.embed_queries([query])[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    tokenizer = embedder._tokenizer  # count the splitter's tokens as the model does
    splitter = SentenceSplitter(
        chunk_size=size,
        chunk_overlap=overlap,
        tokenizer=lambda text: tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"],
    )
    start = time.perf_counter()
    documents = SimpleDirectoryReader(str(folder), recursive=True).load_data()
    index = VectorStoreIndex.from_documents(
        documents,
        embed_model=Wrapped(model_name=embedder.name, embed_batch_size=batch),
        transformations=[splitter],
    )
    seconds = time.perf_counter() - start
    nodes = [node.get_content() for node in index.docstore.docs.values()]
    tokens = sum(len(tokenizer(n, add_special_tokens=False, verbose=False)["input_ids"]) for n in nodes)
    return seconds, len(nodes), tokens


def _phase(seconds: float, chunks: int, tokens: int, mem: PeakRSS, **extra: int) -> dict:
    return {
        "seconds": seconds,
        "chunks": chunks,
        "tokens": tokens,
        "chunks_per_s": chunks / seconds if chunks else None,
        "tokens_per_s": tokens / seconds if tokens else None,
        "cpu_seconds": mem.cpu,
        "chunks_per_cpu_s": chunks / mem.cpu if chunks else None,
        "tokens_per_cpu_s": tokens / mem.cpu if tokens else None,
        "peak_rss_mb": mem.peak,
        "rss_growth_mb": mem.peak - mem.start,
        **extra,
    }


def _best(phases: dict[str, dict], name: str, phase: dict) -> None:
    """Keep the fastest round of a phase, with the highest peak memory seen in any round."""
    old = phases.get(name)
    if old is None or phase["seconds"] < old["seconds"]:
        phases[name] = phase
    if old is not None:
        phases[name]["peak_rss_mb"] = max(old["peak_rss_mb"], phase["peak_rss_mb"])
        phases[name]["rss_growth_mb"] = max(old["rss_growth_mb"], phase["rss_growth_mb"])
    phases[name]["rounds"] = (old or {}).get("rounds", 0) + 1


def _ratios(phases: dict[str, dict]) -> dict[str, float]:
    ours, limit = phases["docqa"], phases["limit"]
    ratios = {
        "docqa_vs_limit_chunks_per_s": ours["chunks_per_s"] / limit["chunks_per_s"],
        "docqa_vs_limit_chunks_per_cpu_s": ours["chunks_per_cpu_s"] / limit["chunks_per_cpu_s"],
        "rerun_pct_of_full_run": 100 * phases["rerun"]["seconds"] / ours["seconds"],
    }
    if "llama_index" in phases:
        llama = phases["llama_index"]
        ratios["docqa_vs_llama_index_tokens_per_s"] = ours["tokens_per_s"] / llama["tokens_per_s"]
        ratios["docqa_vs_llama_index_tokens_per_cpu_s"] = ours["tokens_per_cpu_s"] / llama["tokens_per_cpu_s"]
        ratios["docqa_vs_llama_index_chunks_per_s"] = ours["chunks_per_s"] / llama["chunks_per_s"]
        ratios["llama_index_time_over_docqa_time"] = llama["seconds"] / ours["seconds"]
    return ratios


def _print(phases: dict[str, dict], ratios: dict[str, float], out: Path) -> None:
    print(f"\n{'phase':12} {'seconds':>8} {'CPU s':>7} {'chunks':>7} {'chunks/s':>9} {'tokens/s':>9} "
          f"{'peak RSS MB':>12} {'growth':>7}")  # fmt: skip
    for name, p in phases.items():
        rates = [f"{p[k]:.1f}" if p[k] else "-" for k in ("chunks_per_s", "tokens_per_s")]
        print(f"{name:12} {p['seconds']:8.2f} {p['cpu_seconds']:7.1f} {p['chunks']:7d} {rates[0]:>9} "
              f"{rates[1]:>9} {p['peak_rss_mb']:12.0f} {p['rss_growth_mb']:7.0f}")  # fmt: skip
    print()
    for name, value in ratios.items():
        print(f"{name:36} {value:.3f}")
    print(f"\nwritten to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEV_CORPUS)
    parser.add_argument(
        "--limit-files", type=int, default=60, help="every n-th file up to this many; 0 = all"
    )
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--skip-llama", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the full runs; the fastest counts")
    parser.add_argument("--out", type=Path, default=RESULTS / "ingest.json")
    args = parser.parse_args()

    settings = load_settings(embedder=args.embedder)
    batch = settings.embed_batch_size
    embedder = load_embedder(settings)
    size, overlap = chunk_limit(embedder.max_tokens, settings.chunk_tokens, settings.chunk_overlap)
    model_path = str(resolve_model(args.embedder, "embedder", settings.models_dir))
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    phases: dict[str, dict] = {}
    try:
        files = _slice(args.corpus, args.limit_files or None, work / "docs")
        texts = _chunk_texts(files, work / "docs", embedder, settings)
        tokens = sum(len(embedder.token_spans(t)) for t in texts)
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} files, {megabytes:.1f} MB, {len(texts)} chunks, {tokens} tokens ({args.embedder}, "
              f"size {size}, overlap {overlap}, batch {batch}, {os.cpu_count()} CPUs)", file=sys.stderr)  # fmt: skip
        # Rounds interleave the three full runs, so a busy moment of a shared machine hits all of
        # them; the fastest round of each counts (and the highest memory).
        for round_ in range(args.rounds):
            with PeakRSS() as mem:
                seconds_limit = _limit(model_path, texts, embedder._doc_prompt, batch)
            _best(phases, "limit", _phase(seconds_limit, len(texts), tokens, mem))
            shutil.rmtree(work / "index", ignore_errors=True)
            with PeakRSS() as mem:
                report = ingest_folder(work / "docs", work / "index", embedder, settings)
            _best(phases, "docqa", _phase(report.seconds, report.chunks_added, tokens, mem))
            if not args.skip_llama:
                with PeakRSS() as mem:
                    seconds, nodes, llama_tokens = _llama_index(work / "docs", embedder, size, overlap, batch)
                _best(phases, "llama_index", _phase(seconds, nodes, llama_tokens, mem))
            print(f"round {round_ + 1}: limit {seconds_limit:.1f} s, docqa {report.seconds:.1f} s"
                  + (f", llama-index {seconds:.1f} s" if not args.skip_llama else ""), file=sys.stderr)  # fmt: skip
        with PeakRSS() as mem:
            rerun = ingest_folder(work / "docs", work / "index", embedder, settings)
        phases["rerun"] = _phase(rerun.seconds, rerun.chunks_added, 0, mem, unchanged=len(rerun.unchanged))
        phases["docqa"]["skipped"] = len(report.skipped)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratios = _ratios(phases)
    result = {
        "command": " ".join(sys.argv),
        "embedder": args.embedder,
        "corpus": str(args.corpus),
        "files": len(files),
        "megabytes": megabytes,
        "chunk_size": size,
        "batch_size": batch,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "phases": phases,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    _print(phases, ratios, args.out)


if __name__ == "__main__":
    main()
