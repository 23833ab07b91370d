"""Archive limits for .docx and .epub: zip bombs are refused before any parser reads them."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ingest.archive import ArchiveLimits, check_archive
from ingest.errors import LoadError
from ingest.load import load_file
from tests.conftest import ROOT
from tests.hostile import MIB, bomb_docx, docx_members, member, write_zip, zeros_member

SMALL = ArchiveLimits(max_total_bytes=8 * MIB, max_members=50, max_ratio=100.0, ratio_grace_bytes=MIB)

_INGEST_CHILD = """
import json, resource, sys, time
from pathlib import Path
from ingest.pipeline import ingest_folder
from ingest.settings import load_settings
from tests.fakes import HashEmbedder
folder, index = Path(sys.argv[1]), Path(sys.argv[2])
settings = load_settings(env={}, index_dir=index, models_dir=index / "models")
started = time.perf_counter()
report = ingest_folder(folder, index, HashEmbedder(), settings)
print(json.dumps({
    "added": list(report.added),
    "skipped": {s.path: s.reason for s in report.skipped},
    "seconds": time.perf_counter() - started,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def test_a_docx_bomb_is_skipped_quickly_with_bounded_memory(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    bomb = bomb_docx(folder / "bomb.docx", mebibytes=1100)
    assert bomb.stat().st_size < 1.5 * MIB
    with zipfile.ZipFile(bomb) as archive:
        assert sum(i.file_size for i in archive.infolist()) > 1024 * MIB
    (folder / "fine.md").write_text("# Fine\n\nConnect the red wire to input A1.\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _INGEST_CHILD, str(folder), str(tmp_path / "index")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    print(result)
    assert result["added"] == ["fine.md"]
    assert "zip bomb" in result["skipped"]["bomb.docx"]
    assert result["seconds"] < 20  # the central directory alone refuses it: nothing is inflated
    assert result["peak_rss_mb"] < 600  # imports and the index; the bomb took 2.7 GB before


def test_an_epub_bomb_is_refused_by_load_file(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "book.epub",
        [member("mimetype", b"application/epub+zip"), zeros_member("OEBPS/chapter1.xhtml", 400)],
    )
    with pytest.raises(LoadError, match=r"EPUB expands to 400 MB .*zip bomb"):
        load_file(path, "book.epub")


def test_a_real_docx_passes_and_still_loads(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "fine.docx", docx_members("Measuring"))
    check_archive(path, ".docx")
    assert load_file(path, "fine.docx")[0].heading == "Measuring"


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([zeros_member("big.xml", 9)], r"expands to 9 MB \(limit 8 MB\)"),
        ([zeros_member("dense.xml", 2)], r"dense\.xml is compressed [\d,]+ to 1 \(limit 100\)"),
        ([member(f"m{i}.xml", b"x") for i in range(51)], r"declares 51 files \(limit 50 files\)"),
    ],
    ids=["total-size", "ratio", "member-count"],
)
def test_limits_from_the_central_directory(tmp_path: Path, members, reason: str) -> None:
    with pytest.raises(LoadError, match=rf"^refused: this \.docx {reason}"):
        check_archive(write_zip(tmp_path / "x.docx", members), ".docx", SMALL)


def test_a_file_list_larger_than_its_count_says_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "long.docx", [member(f"{i:04d}" + "n" * 1000, b"x") for i in range(60)])
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (1).to_bytes(2, "little") * 2  # the end record claims one entry
    path.write_bytes(bytes(data))
    with pytest.raises(LoadError, match=r"declares a [\d,]+-byte file list \(limit 50 files\)"):
        check_archive(path, ".docx", SMALL)


def test_sizes_are_counted_as_inflated_not_as_declared(tmp_path: Path) -> None:
    # Each header declares 1 MiB; together they really hold 12 MiB, over the 8 MiB budget.
    forged = [zeros_member(f"part{i}.bin", 1, declared=MIB - 1) for i in range(12)]
    with pytest.raises(LoadError, match=r"refused|not a readable"):
        check_archive(write_zip(tmp_path / "forged.docx", forged), ".docx", SMALL)


def test_nested_archives_share_the_budget_and_the_depth_limit(tmp_path: Path) -> None:
    inner = write_zip(tmp_path / "inner.zip", [member("a.txt", b"a" * 100)]).read_bytes()
    one_deep = write_zip(tmp_path / "one.docx", [*docx_members(), member("embeddings/sheet.xlsx", inner)])
    check_archive(one_deep, ".docx", SMALL)  # an embedded spreadsheet is fine

    middle = write_zip(tmp_path / "middle.zip", [member("inner.zip", inner)]).read_bytes()
    two_deep = write_zip(tmp_path / "two.docx", [member("embeddings/x.zip", middle)])
    with pytest.raises(LoadError, match=r"nests archives more than 1 deep"):
        check_archive(two_deep, ".docx", SMALL)

    bomb_inside = write_zip(tmp_path / "b.zip", [zeros_member("z.bin", 9)]).read_bytes()
    hidden = write_zip(tmp_path / "hidden.docx", [member("embeddings/b.zip", bomb_inside)])
    with pytest.raises(LoadError, match=r"expands to 9 MB"):
        check_archive(hidden, ".docx", SMALL)


def test_not_a_zip_is_not_readable(tmp_path: Path) -> None:
    path = tmp_path / "bad.docx"
    path.write_bytes(b"just some text, renamed")
    with pytest.raises(LoadError, match=r"^not a readable \.docx"):
        check_archive(path, ".docx")
