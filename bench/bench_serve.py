"""``docqa serve`` under load: do retrieval and health wait behind an upload being indexed, or an answer?

Starts the real ``docqa serve`` (a child process) over an index, runs ``--clients`` concurrent
clients that each alternate ``POST /v1/retrieve`` and ``GET /healthz`` without pause, and splits
their requests by what the server was doing when each started:

- ``warmup``: the first ``--warmup-seconds`` (connections opening; reported, not compared);
- ``idle``: nothing else (the next ``--idle-seconds``);
- ``upload``: a document (``--upload``, default the Spanish eyes17 manual, 79 pages) is being
  uploaded and indexed through ``POST /v1/documents``; it is deleted again afterwards;
- ``answer``: a chat completion is being generated (skip with ``--no-answer``).

For each phase and endpoint: requests, p50, p90 and max latency, errors, and p50 over the idle
p50 (same run). Were the two endpoints blocked behind the upload or the answer, their latency
would reach that phase's length; on a busy CPU they slow down only by sharing it. The load
average is recorded at each phase's start and end. Results go to bench/results/bench_serve.json.

    python bench/bench_serve.py                       # a fresh index of corpus/weechat, MiniLM
    python bench/bench_serve.py --index /tmp/corpus-index --embedder embeddinggemma-300m
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
QUERIES = [
    "How do I join a channel?",
    "¿Cómo me conecto a un servidor IRC?",
    "What is the frequency range of the wave generator?",
    "How do I set my nick?",
    "¿Qué rango de voltaje admiten las entradas A1 y A2?",
    "How do I close a buffer?",
]


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _build_index(index: Path, embedder: str) -> None:
    command = [sys.executable, "-m", "rag", "ingest", str(ROOT / "corpus" / "weechat"), "--index", str(index)]
    subprocess.run([*command, "--embedder", embedder], check=True, cwd=ROOT)


def _start_server(index: Path, embedder: str, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, DOCQA_EMBEDDER=embedder, DOCQA_MAX_NEW_TOKENS="64")
    env.pop("DOCQA_API_TOKENS", None)
    command = [sys.executable, "-m", "rag", "serve", "--index", str(index), "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=log.open("wb"))


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"docqa serve exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    sys.exit("docqa serve did not start in 900 s")


def _client(url: str, stop: threading.Event, records: list, seed: int) -> None:
    """Alternate retrieve and health until ``stop``; record (endpoint, start, seconds, status)."""
    with httpx.Client(base_url=url, timeout=600) as http:
        i = seed
        while not stop.is_set():
            i += 1
            start = time.monotonic()
            if i % 2:
                reply = http.post("/v1/retrieve", json={"query": QUERIES[i % len(QUERIES)], "top_k": 3})
                endpoint = "retrieve"
            else:
                reply = http.get("/healthz")
                endpoint = "healthz"
            records.append((endpoint, start, time.monotonic() - start, reply.status_code))


def _phase(name: str, action, phases: list) -> object:
    entry = {"phase": name, "load_start": _load(), "start": time.monotonic()}
    result = action()
    entry |= {"end": time.monotonic(), "load_end": _load()}
    entry["seconds"] = round(entry["end"] - entry["start"], 2)
    phases.append(entry)
    return result


def _stats(records: list, phases: list) -> list[dict]:
    rows = []
    for phase in phases:
        for endpoint in ("retrieve", "healthz"):
            inside = [r for r in records if r[0] == endpoint and phase["start"] <= r[1] < phase["end"]]
            ok = sorted(r[2] for r in inside if r[3] == 200)
            row = {"phase": phase["phase"], "endpoint": endpoint, "requests": len(inside)}
            row["errors"] = len(inside) - len(ok)
            if ok:
                row |= {
                    "p50_ms": round(1000 * statistics.median(ok), 1),
                    "p90_ms": round(1000 * ok[int(0.9 * (len(ok) - 1))], 1),
                    "max_ms": round(1000 * ok[-1], 1),
                }
            rows.append(row)
    idle = {r["endpoint"]: r.get("p50_ms") for r in rows if r["phase"] == "idle"}
    for row in rows:
        if idle.get(row["endpoint"]) and row.get("p50_ms"):
            row["p50_vs_idle"] = round(row["p50_ms"] / idle[row["endpoint"]], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--index", type=Path, default=None, help="an index (default: build one of corpus/weechat)"
    )
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup-seconds", type=float, default=5.0, help="requests left out of 'idle'")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--upload", type=Path, default=ROOT / "corpus" / "eyes17" / "es" / "eyes17.pdf")
    parser.add_argument("--no-answer", action="store_true", help="skip the phase during an answer")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    index = args.index or work / "index"
    if args.index is None:
        _build_index(index, args.embedder)
    port, log = _free_port(), work / "serve.log"
    url = f"http://127.0.0.1:{port}"
    process = _start_server(index, args.embedder, port, log)
    try:
        started = time.monotonic()
        _wait_ready(url, process, log)
        print(f"server ready in {time.monotonic() - started:.1f} s; load {_load()}", flush=True)
        stop, records, phases = threading.Event(), [], []
        clients = [
            threading.Thread(target=_client, args=(url, stop, records, n), daemon=True)
            for n in range(args.clients)
        ]
        for client in clients:
            client.start()
        _phase("warmup", lambda: time.sleep(args.warmup_seconds), phases)
        _phase("idle", lambda: time.sleep(args.idle_seconds), phases)

        def upload() -> dict:
            data = args.upload.read_bytes()
            with httpx.Client(base_url=url, timeout=3600) as http:
                reply = http.post("/v1/documents", files={"file": (args.upload.name, data)})
            reply.raise_for_status()
            return reply.json()

        report = _phase("upload", upload, phases)
        print(f"upload indexed: {report['chunks_added']} chunks in {report['seconds']} s", flush=True)
        if not args.no_answer:

            def answer() -> dict:
                body = {"messages": [{"role": "user", "content": QUERIES[0]}]}
                with httpx.Client(base_url=url, timeout=3600) as http:
                    return http.post("/v1/chat/completions", json=body).json()

            reply = _phase("answer", answer, phases)
            print(f"answer: {reply['usage']['completion_tokens']} tokens", flush=True)
        stop.set()
        for client in clients:
            client.join(120)
        with httpx.Client(base_url=url, timeout=600) as http:  # leave the index as it was
            ids = [d["id"] for d in http.get("/v1/documents").json()["data"] if d["file"] == args.upload.name]
            for doc in ids:
                http.delete(f"/v1/documents/{doc}")
    finally:
        process.terminate()
        process.wait(60)
    rows = _stats(records, phases)
    result = {
        "clients": args.clients,
        "embedder": args.embedder,
        "upload": {"file": args.upload.name, "bytes": args.upload.stat().st_size, **report},
        "phases": [{k: v for k, v in p.items() if k not in ("start", "end")} for p in phases],
        "rows": rows,
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_serve.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    for phase in result["phases"]:
        print(
            f"{phase['phase']:7} {phase['seconds']:7.1f} s  load {phase['load_start']} -> {phase['load_end']}"
        )
    print(
        f"{'phase':7} {'endpoint':9} {'n':>5} {'err':>4} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'p50/idle':>8}"
    )
    for r in rows:
        print(
            f"{r['phase']:7} {r['endpoint']:9} {r['requests']:5} {r['errors']:4} {r.get('p50_ms', '-'):>8} "
            f"{r.get('p90_ms', '-'):>8} {r.get('max_ms', '-'):>8} {r.get('p50_vs_idle', '-'):>8}"
        )


if __name__ == "__main__":
    main()
