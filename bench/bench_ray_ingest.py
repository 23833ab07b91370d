"""Ingestion throughput: the local pipeline against Ray with 1 and 2 workers, in one run.

Builds one folder of real files (the WeeChat HTML guides under 200 KB, then parts of
``--pages-per-file`` pages of the eyes17 PDF manuals, English and Spanish, up to ``--max-files``),
then ingests it into a fresh index with the real ``docqa ingest`` command, once per configuration,
interleaved over ``--rounds``:

  plain:  ``docqa ingest FOLDER`` (one process; torch uses every core)
  plain-1t: the same with ``DOCQA_THREADS=1`` (one core: the compute of one Ray worker)
  ray-1:  ``docqa ingest FOLDER --ray --ray-workers 1`` (a local Ray runtime, one worker, 1 thread)
  ray-2:  ``docqa ingest FOLDER --ray --ray-workers 2`` (two workers, 1 thread each)

Each run reports: wall time of the whole command (Python start, Ray start, model loading, the
ingest), the ingest alone (``IngestReport.seconds``: after the workers are ready), Ray's start-up
(``ray.startup_seconds``: ``ray.init`` until every worker has loaded its model), chunks/s over
both, CPU seconds of the whole process tree (the steadier figure on a shared machine), peak RSS
of the tree (driver, Ray's daemons and workers; shared pages counted in each) and of the driver
alone (sampled every 100 ms), with the load average before and after. Writes
``bench/results/bench_ray_ingest[-EMBEDDER].json`` and prints a Markdown table.

    python bench/bench_ray_ingest.py                                 # MiniLM, 24 files
    python bench/bench_ray_ingest.py --embedder embeddinggemma-300m --html 0 --max-files 8 --pages-per-file 2

On a machine with C cores, Ray with W <= C workers can at best match the local pipeline's use
of the same cores; what it adds is the ability to use the cores of other machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
MANUALS = ROOT.parent / "shared" / "manuals"
CONFIGS = {
    "plain": [],
    "plain-1t": [],  # with DOCQA_THREADS=1: the same compute as one Ray worker
    "ray-1": ["--ray", "--ray-workers", "1"],
    "ray-2": ["--ray", "--ray-workers", "2"],
}
ENVS = {"plain-1t": {"DOCQA_THREADS": "1"}}


def build_folder(folder: Path, pages_per_file: int, max_files: int, html: int = 4) -> list[str]:
    """Real files to ingest: the short HTML guides, then PDF manuals cut into short PDFs.

    PDF parts alternate English and Spanish, so any ``max_files`` holds both.
    """
    import pypdfium2 as pdfium

    guides = sorted((MANUALS / "weechat").glob("weechat_*.html")) or sorted(
        (ROOT / "corpus/weechat").glob("*.html")
    )
    guides = [g for g in guides if g.stat().st_size < 200_000]  # the 1 MB user guide would be half the chunks
    names = []
    for guide in guides[: min(html, max_files)]:
        shutil.copy(guide, folder / guide.name)
        names.append(guide.name)
    sources = {lang: pdfium.PdfDocument(ROOT / f"corpus/eyes17/{lang}/eyes17.pdf") for lang in ("en", "es")}
    parts = [
        (lang, start)
        for start in range(0, max(len(d) for d in sources.values()), pages_per_file)
        for lang in sources
        if start < len(sources[lang])
    ]
    for lang, start in parts[: max(max_files - len(names), 0)]:
        source = sources[lang]
        part = pdfium.PdfDocument.new()
        part.import_pages(source, list(range(start, min(start + pages_per_file, len(source)))))
        name = f"eyes17-{lang}-p{start + 1:03d}.pdf"
        part.save(folder / name)
        names.append(name)
    return names


def _sample(proc: psutil.Process, cpu: dict[int, float]) -> tuple[int, int]:
    """(RSS of the process tree, RSS of ``proc``); ``cpu`` gets each process's CPU seconds so far."""
    total = own = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            rss = p.memory_info().rss
            times = p.cpu_times()
            cpu[p.pid] = max(cpu.get(p.pid, 0.0), times.user + times.system)
            total += rss
            own = rss if p.pid == proc.pid else own
    return total, own


def run_once(name: str, folder: Path, index: Path, embedder: str) -> dict:
    """One ``docqa ingest`` into a fresh index; the report, timings and peak RSS."""
    shutil.rmtree(index, ignore_errors=True)
    cmd = [sys.executable, "-m", "rag", "ingest", str(folder), "--index", str(index), "--embedder", embedder]
    load_before = os.getloadavg()
    started = time.perf_counter()
    env = {**os.environ, **ENVS.get(name, {})}
    proc = subprocess.Popen(
        [*cmd, *CONFIGS[name], "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    peak, peak_driver, cpu, stop = [0], [0], {}, threading.Event()

    def sample() -> None:
        watched = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                tree, own = _sample(watched, cpu)
            except psutil.NoSuchProcess:
                return
            peak[0], peak_driver[0] = max(peak[0], tree), max(peak_driver[0], own)
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=3600)
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{err[-3000:]}")
    report = json.loads(out)
    chunks = report["chunks_added"]
    ray = report.get("ray", {})
    return {
        "config": name,
        "files": len(report["added"]),
        "skipped": len(report["skipped"]),
        "chunks": chunks,
        "wall_s": round(wall, 2),
        "ingest_s": report["seconds"],
        "ray_startup_s": ray.get("startup_seconds"),
        "files_by_node": ray.get("files_by_node"),
        "chunks_per_s_wall": round(chunks / wall, 2),
        "chunks_per_s_ingest": round(chunks / report["seconds"], 2),
        "cpu_s": round(sum(cpu.values()), 1),
        "cpu_driver_s": round(cpu.get(proc.pid, 0.0), 1),
        "chunks_per_cpu_s": round(chunks / max(sum(cpu.values()), 1e-9), 2),
        "peak_rss_mb": round(peak[0] / 2**20),
        "peak_rss_driver_mb": round(peak_driver[0] / 2**20),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--pages-per-file", type=int, default=4)
    parser.add_argument("--max-files", type=int, default=24)
    parser.add_argument("--html", type=int, default=4, help="HTML guides first (at most 4)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds; the fastest of each is kept"
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        folder = Path(tmp, "docs")
        folder.mkdir()
        names = build_folder(folder, args.pages_per_file, args.max_files, args.html)
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"{len(names)} files, {size / 2**20:.1f} MB; cores {os.cpu_count()}", flush=True)
        runs = []
        for r in range(args.rounds):
            for name in args.configs:
                result = run_once(name, folder, Path(tmp, f"ix-{name}"), args.embedder)
                result["round"] = r
                runs.append(result)
                print(json.dumps(result), flush=True)
    best = {
        name: min((r for r in runs if r["config"] == name), key=lambda r: r["wall_s"])
        for name in args.configs
    }
    plain = best.get("plain")
    print(
        "\n| run | files | chunks | wall s | ingest s | Ray start-up s | chunks/s (wall) | chunks/s (ingest) "
        "| ingest vs plain | CPU s tree / driver | chunks per CPU s | peak RSS MB tree / driver | load before |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in best.items():
        ratio = f"{r['chunks_per_s_ingest'] / plain['chunks_per_s_ingest']:.2f}x" if plain else "-"
        startup = r["ray_startup_s"] if r["ray_startup_s"] is not None else "-"
        print(
            f"| {name} | {r['files']} | {r['chunks']} | {r['wall_s']} | {r['ingest_s']} | {startup} | "
            f"{r['chunks_per_s_wall']} | {r['chunks_per_s_ingest']} | {ratio} | {r['cpu_s']} / {r['cpu_driver_s']} | "
            f"{r['chunks_per_cpu_s']} | {r['peak_rss_mb']} / {r['peak_rss_driver_mb']} | {r['load_before'][0]} |"
        )
    suffix = "" if args.embedder == "all-minilm-l6-v2" else f"-{args.embedder}"
    out = ROOT / "bench" / "results" / f"bench_ray_ingest{suffix}.json"
    meta = {"embedder": args.embedder, "files": len(names), "bytes": size, "cpus": os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version()}  # fmt: skip
    out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
