"""``docqa ingest``: help, errors as one line with an exit code, --remove, --json, the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from ingest.store import open_index
from rag.cli import cli
from tests.conftest import ROOT
from tests.fakes import HashEmbedder


def docqa(*args: str) -> subprocess.CompletedProcess:
    """Run the real entry point, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ,
    )


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Power\n\nThe battery lasts ten hours. Charge it with the USB cable.")
    (folder / "b.txt").write_text("Clean the lens with a soft cloth and a drop of alcohol.")
    (folder / "empty.txt").touch()
    (folder / "photo.jpg").write_bytes(b"\xff\xd8jpeg")
    return folder


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["ingest", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "docqa ingest ~/manuals" in result.output
    assert "--remove" in result.output and "--json" in result.output


def test_folder_or_remove_is_required() -> None:
    result = CliRunner().invoke(cli, ["ingest"])
    assert result.exit_code == 2 and "give a FOLDER" in result.output


def test_missing_folder_and_missing_index_are_one_line_errors(tmp_path: Path) -> None:
    result = docqa("ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "ix"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path / 'nope'} is not a folder; give the folder that holds your documents"
    )
    result = docqa("ingest", "--remove", "x.pdf", "--index", str(tmp_path / "ix"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: no index at {tmp_path / 'ix'}; run 'docqa ingest FOLDER' first"


def test_remove_and_mismatch_need_no_model(docs: Path, tmp_path: Path) -> None:
    ingest_folder(docs, tmp_path / "ix", HashEmbedder(), Settings())
    result = docqa("ingest", str(docs), "--index", str(tmp_path / "ix"), "--embedder", "all-minilm-l6-v2")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "built with hash-embedder" in result.stderr and "--embedder hash-embedder" in result.stderr
    result = docqa(
        "ingest", "--remove", str(docs / "a.md"), "--remove", "zzz.pdf", "--index", str(tmp_path / "ix")
    )
    assert result.returncode == 0, result.stderr
    assert f"removed: {docs / 'a.md'}" in result.stderr and "not in the index: zzz.pdf" in result.stderr
    with open_index(tmp_path / "ix") as index:
        assert [f.path for f in index.files()] == ["b.txt"]


@pytest.mark.slow
def test_ingest_with_minilm_json_and_text_reports(docs: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "ix")
    result = docqa("ingest", str(docs), "--index", index, "--embedder", "all-minilm-l6-v2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(report["added"]) == ["a.md", "b.txt"] and report["chunks_added"] == 2
    assert {s["path"]: s["reason"] for s in report["skipped"]} == {
        "empty.txt": "empty file (0 bytes)",
        "photo.jpg": "unsupported file type '.jpg'",
    }
    assert report["index"] == index and "files 2/2" in result.stderr  # the progress bar
    (docs / "b.txt").write_text("Replace the fuse with a 2 A slow-blow fuse.")
    result = docqa("ingest", str(docs), "--index", index, "--embedder", "all-minilm-l6-v2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "0 added, 1 updated, 1 unchanged, 0 removed, 2 skipped; 1 chunks embedded" in lines[0]
    assert lines[1:] == [
        "skipped:",
        "  empty.txt: empty file (0 bytes)",
        "  photo.jpg: unsupported file type '.jpg'",
    ]


def test_exclude_option_leaves_files_out(docs: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "ix")
    (docs / ".docqaignore").write_text("*.jpg\n")
    result = docqa(
        "ingest",
        str(docs),
        "--index",
        index,
        "--embedder",
        "all-minilm-l6-v2",
        "--exclude",
        "b.txt",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == ["a.md"] and [s["path"] for s in report["skipped"]] == ["empty.txt"]


def test_nothing_to_index_fails_before_loading_a_model(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"\xff\xd8jpeg")
    # An embedder that does not exist: the scan must fail first, or this error would be a model's.
    result = docqa("ingest", str(folder), "--index", str(tmp_path / "ix"), "--embedder", "/no/such/model")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no file docqa can index in {folder}") and "photo.jpg" in last
    assert not (tmp_path / "ix").exists()
