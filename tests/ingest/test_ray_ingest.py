"""``docqa ingest FOLDER --ray``: the real CLI on a real two-node Ray cluster started here.

The cluster is two ``ray start --block`` processes on this machine (a head and a second node,
one CPU each), each in its own session so that teardown ends exactly the processes they started
(``ray stop`` would end every Ray process of the user, other people's included). The index the
Ray run builds must equal the local pipeline's (chunk ids and texts, vectors within 1e-5), both
nodes must have read files, a re-run must send only the changed file, and a broken file must be
skipped with the local pipeline's reason. A second test runs Ray on this machine alone with the
network cut and every socket connection of the driver recorded. Those two are slow (Ray and the
model start in every worker); the fast ones check the errors and that only --ray imports Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from ingest.store import open_index
from rag.cli import cli
from tests.conftest import ROOT
from tests.ingest.test_ocr import scanned_copy
from tests.offline_audit import AUDIT_PRELUDE

RAY = Path(sys.executable).with_name("ray")
# Token authentication as Ray's default, with a token made for this test cluster and given to its
# nodes and drivers (``ray start`` makes none: on a fresh machine, without ~/.ray/auth_token, it
# refused to start); no usage statistics; workers find the models where the tests do.
ENV = {
    **os.environ,
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
}
EMBEDDER = "all-minilm-l6-v2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session(leader: int) -> list[int]:
    """Processes in the session ``leader`` started (Ray's daemons stay in it)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == leader and fields[0] != "Z":  # fields: state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


def _end_sessions(*leaders: int) -> None:
    """SIGTERM to every process of these sessions, SIGKILL to those still there after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in [pid for leader in leaders for pid in _session(leader)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while any(_session(leader) for leader in leaders) and time.monotonic() < deadline:
            time.sleep(0.2)


def _ray_start(log: Path, *args: str) -> subprocess.Popen:
    """``ray start ... --block`` in its own session; returns once the node is up."""
    out = log.open("w")
    proc = subprocess.Popen(
        [str(RAY), "start", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--block", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=ENV,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while "block forever" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _end_sessions(proc.pid)
            raise AssertionError(f"ray start failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return proc


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node; yields (address, start-up seconds of each)."""
    temp = Path(tempfile.mkdtemp(prefix="docqa-ray-", dir="/tmp"))  # Ray's socket paths must be short
    port = _free_port()
    procs = []
    try:
        t0 = time.perf_counter()
        head = [f"--port={port}", "--head", "--include-dashboard=false", f"--temp-dir={temp}"]
        head += [f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}"]
        procs.append(_ray_start(temp / "head.log", *head))
        t1 = time.perf_counter()
        node = [f"--address=127.0.0.1:{port}", f"--dashboard-agent-listen-port={_free_port()}"]
        procs.append(_ray_start(temp / "node.log", *node))
        t2 = time.perf_counter()
        print(f"ray start: head {t1 - t0:.1f} s, second node {t2 - t1:.1f} s; load {_load()}")
        yield f"127.0.0.1:{port}", (t1 - t0, t2 - t1)
    finally:
        _end_sessions(*(proc.pid for proc in procs))
        for proc in procs:
            proc.wait(timeout=10)
        left = [pid for proc in procs for pid in _session(proc.pid)]
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 1)[0]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Real files: two pages of a real PDF manual, one of them scanned (OCR), two real HTML pages,
    a table, a note, a copy, a broken PDF."""
    folder = tmp_path / "docs"
    folder.mkdir()
    manual = ROOT / "corpus/eyes17/en/eyes17.pdf"
    scanned_copy(folder / "eyes17-p11-12.pdf", [(manual, 11, False), (manual, 12, True)])
    rows = "".join(f"<tr><td>{v} V</td><td>{r} ohm</td></tr>" for v, r in ((5, 100), (12, 470), (24, 1000)))
    (folder / "table.html").write_text(
        f"<html><body><h1>Resistors</h1><table><tr><th>Voltage</th><th>Resistor</th></tr>{rows}</table></body></html>"
    )
    for name in ("weechat_quickstart.en.html", "weechat_quickstart.es.html"):
        shutil.copy(ROOT / "corpus/weechat" / name, folder / name)
    (folder / "notes.md").write_text(
        "# Power\n\nThe battery lasts ten hours. Charge it with the USB cable.\n"
    )
    shutil.copy(folder / "notes.md", folder / "notes_copy.md")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage")
    return folder


def _docqa(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def _snapshot(index_dir: Path) -> dict:
    """Files, chunks (id -> source, text) and vectors by (file, text) of an index."""
    with open_index(index_dir) as index:
        files = index.files()
        count = index.count()
        ids = [cid for cid, _ in index.search_dense(np.ones(index.dim, dtype=np.float32), count + 10)]
        chunks = {c.id: (c.source, c.text, c.origin) for c in index.get_chunks(ids)}
        vectors = {(f.path, t): v for f in files for t, v in index.file_vectors(f.root, f.path).items()}
    assert len(chunks) == count > 0
    return {"files": sorted(f.path for f in files), "chunks": chunks, "vectors": vectors}


@pytest.mark.slow
def test_ray_cluster_builds_the_local_pipelines_index_incrementally(cluster, docs, tmp_path, minilm):
    address, startup = cluster
    ray_index, local_index = tmp_path / "ray-ix", tmp_path / "local-ix"
    started = time.perf_counter()
    result = _docqa(
        "ingest", str(docs), "--index", str(ray_index), "--embedder", EMBEDDER, "--ray", address, "--json"
    )
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    print(
        f"first ray run {seconds:.1f} s (workers ready in {report['ray']['startup_seconds']} s); load {_load()}"
    )

    local = ingest_folder(docs, local_index, minilm, Settings(embedder=EMBEDDER))
    for key in ("added", "skipped", "warnings", "chunks_added"):
        assert report[key] == json.loads(json.dumps(getattr(local, key), default=_as_dict)), key
    assert {s["path"]: s["reason"] for s in report["skipped"]} == {
        "broken.pdf": next(s.reason for s in local.skipped if s.path == "broken.pdf"),
        "notes_copy.md": "same content as notes.md, indexed once",
    }
    assert "not a readable PDF" in {s["path"]: s["reason"] for s in report["skipped"]}["broken.pdf"]
    got, want = _snapshot(ray_index), _snapshot(local_index)
    assert got["files"] == want["files"] == sorted(local.added)
    assert got["chunks"] == want["chunks"], "same chunk ids and texts as the local pipeline"
    assert got["vectors"].keys() == want["vectors"].keys()
    worst = max(float(np.abs(v - want["vectors"][k]).max()) for k, v in got["vectors"].items())
    assert worst < 1e-5, worst

    by_node = report["ray"]["files_by_node"]
    assert len(by_node) == 2 and sum(by_node.values()) == 6, by_node  # both nodes read; the copy was not sent
    origins = {origin for _, _, origin in got["chunks"].values()}
    assert origins == {"text", "ocr"} or not shutil.which("tesseract"), origins  # the scanned page was read
    assert any("| Voltage | Resistor |" in text for _, text, _ in got["chunks"].values())  # a table stays one
    assert "files read per node" in result.stderr

    (docs / "notes.md").write_text(
        "# Power\n\nThe battery lasts twelve hours. Charge it with the USB cable.\n"
    )
    guide = docs / "weechat_quickstart.en.html"
    guide.write_text(guide.read_text().replace("</body>", "<p>Spare fuses are kept in the lid.</p></body>"))
    result = _docqa(
        "ingest", str(docs), "--index", str(ray_index), "--embedder", EMBEDDER, "--ray", address, "--json"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout)
    changed = ["notes.md", "weechat_quickstart.en.html"]
    assert sorted(again["updated"]) == changed and again["added"] == []
    assert sorted(again["unchanged"]) == sorted(set(local.added) - set(changed))
    assert sum(again["ray"]["files_by_node"].values()) == 2, "only the changed files went to a worker"
    local = ingest_folder(docs, local_index, minilm, Settings(embedder=EMBEDDER))
    assert sorted(local.updated) == changed
    # the guide's unchanged text kept its vectors: the worker embedded only the new chunks
    assert again["chunks_added"] == local.chunks_added and again["chunks_reused"] == local.chunks_reused > 0
    assert again["chunks_added"] - again["chunks_reused"] < 6
    got, want = _snapshot(ray_index), _snapshot(local_index)
    assert got["chunks"] == want["chunks"]
    assert max(float(np.abs(v - want["vectors"][k]).max()) for k, v in got["vectors"].items()) < 1e-5
    print(f"ray start-up: head {startup[0]:.1f} s, second node {startup[1]:.1f} s")


def _as_dict(obj: object) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)


_OFFLINE = r"""
import sys
from rag.cli import main
sys.argv = ["docqa", "ingest", sys.argv[1], "--index", sys.argv[2], "--embedder", "all-minilm-l6-v2",
            "--ray", "--ray-workers", "1", "--json"]
try:
    main()
except SystemExit as err:
    code = err.code
else:
    code = 0
print(json.dumps({"code": code, "attempts": attempts}))
"""


@pytest.mark.slow
def test_local_ray_runtime_stays_offline(docs, tmp_path):
    """Ray started by docqa itself, in a network namespace with only the loopback (where allowed)."""
    env = {k: v for k, v in ENV.items() if not k.startswith("RAY_")}  # docqa must set what it needs
    cmd = [sys.executable, "-c", AUDIT_PRELUDE + _OFFLINE, str(docs), str(tmp_path / "ix")]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stderr[-3000:]
    outside = [a for a in result["attempts"] if "127.0.0.1" not in a and "'localhost'" not in a]
    assert outside == [], outside
    report = json.loads(done.stdout.strip().rsplit("\n", 1)[0])  # the report, then the audit's line
    assert report["ray"]["address"] == "local" and len(report["added"]) == 5


def test_help_and_plain_ingest_do_not_import_ray() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from rag.cli import cli; "
        "r = CliRunner().invoke(cli, ['ingest', '--help']); "
        "print(r.exit_code, '--ray [ADDRESS]' in r.output, 'ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.split() == ["0", "True", "False"], done.stderr[-2000:]


def test_ray_errors_are_one_line(docs: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "ix")
    result = CliRunner().invoke(cli, ["ingest", str(docs), "--index", index, "--ray-workers", "2"])
    assert result.exit_code == 2 and "--ray-workers needs --ray" in result.output
    for address, message in (
        (f"127.0.0.1:{_free_port()}", "error: nothing answers at 127.0.0.1:"),
        ("head-node", "error: bad Ray address 'head-node': use auto, ray://HOST:PORT or HOST:PORT"),
    ):
        done = _docqa(
            "ingest", str(docs), "--index", index, "--embedder", EMBEDDER, "--ray", address, timeout=60
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1].startswith(message), done.stderr[-2000:]
    assert not (tmp_path / "ix").exists()  # nothing was written
