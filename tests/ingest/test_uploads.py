"""Upload safety: names are cleaned, nothing leaves the uploads folder, type and size are limited."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import IndexBusy
from ingest.load import SUPPORTED_SUFFIXES
from ingest.uploads import (
    UploadRejected,
    check_upload,
    clean_name,
    delete_upload,
    save_upload,
    staged_uploads,
    uploads_dir,
)

MB = 1_000_000
SUFFIXES = {".pdf", ".md", ".txt", ".html"}


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("manual.pdf", "manual.pdf"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\Windows\\system.ini.TXT", "system.ini.txt"),
        ("/abs/path/Guía de uso.PDF", "Guía de uso.pdf"),
        ("name\x00with\x1fcontrols.md", "namewithcontrols.md"),
        ("semi;colon|pipe&amp$(x).md", "semi_colon_pipe_amp_(x).md"),
        (".hidden.md", "hidden.md"),
        ("ＦＵＬＬ.md", "FULL.md"),  # NFKC: full-width letters become plain ones
        ("a" * 300 + ".pdf", "a" * 116 + ".pdf"),  # 120 characters at most
    ],
)
def test_clean_name(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean


@pytest.mark.parametrize("raw", ["", "..", "../..", "/", "...", "CON", "nul.txt", "\x00"])
def test_clean_name_rejects_names_with_nothing_left(raw: str) -> None:
    with pytest.raises(UploadRejected, match="rename the file"):
        clean_name(raw)


def test_check_upload_type_and_size() -> None:
    assert check_upload("a.PDF", 10, max_bytes=MB, suffixes=SUFFIXES) == "a.pdf"
    with pytest.raises(UploadRejected, match=r"type \.exe is not supported; use \.html, \.md"):
        check_upload("setup.exe", 10, max_bytes=MB, suffixes=SUFFIXES)
    with pytest.raises(UploadRejected, match="not supported"):
        check_upload("README", 10, max_bytes=MB, suffixes=SUFFIXES)
    with pytest.raises(UploadRejected, match=r"over the 1\.0 MB limit"):
        check_upload("big.pdf", MB + 1, max_bytes=MB, suffixes=SUFFIXES)
    with pytest.raises(UploadRejected, match="empty"):
        check_upload("empty.md", 0, max_bytes=MB, suffixes=SUFFIXES)


def test_the_loaders_suffixes_are_accepted() -> None:
    for suffix in SUPPORTED_SUFFIXES:
        assert check_upload(f"doc{suffix}", 1, max_bytes=MB, suffixes=SUPPORTED_SUFFIXES) == f"doc{suffix}"


def test_save_upload_stays_inside_the_folder(tmp_path: Path) -> None:
    folder = uploads_dir(tmp_path / "index")
    for name in ("../escape.md", "../../escape.md", "/tmp/escape.md", "sub/dir/escape.md", "..\\escape.md"):
        saved = save_upload(folder, name, b"# hi\n", max_bytes=MB, suffixes=SUFFIXES)
        assert saved.parent == folder.resolve()
        assert saved.name == "escape.md"
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert files == [Path("index/uploads/escape.md")]


def test_save_upload_replaces_and_leaves_no_partial_file(tmp_path: Path) -> None:
    save_upload(tmp_path, "notes.txt", b"one", max_bytes=MB, suffixes=SUFFIXES)
    saved = save_upload(tmp_path, "notes.txt", b"two", max_bytes=MB, suffixes=SUFFIXES)
    assert saved.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_save_upload_refuses_before_writing(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected):
        save_upload(tmp_path / "up", "big.md", b"x" * 11, max_bytes=10, suffixes=SUFFIXES)
    with pytest.raises(UploadRejected):
        save_upload(tmp_path / "up", "virus.exe", b"MZ", max_bytes=10, suffixes=SUFFIXES)
    assert not (tmp_path / "up").exists()


def test_delete_upload_only_inside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    saved = save_upload(folder, "a.md", b"a", max_bytes=MB, suffixes=SUFFIXES)
    outside = tmp_path / "keep.md"
    outside.write_text("keep")
    assert not delete_upload(folder, outside)
    assert not delete_upload(folder, folder / ".." / "keep.md")
    assert outside.exists()
    assert delete_upload(folder, saved)
    assert not saved.exists()
    assert not delete_upload(folder, saved)


def test_staged_uploads_are_taken_back_when_indexing_fails(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    save_upload(folder, "a.md", b"old a", max_bytes=MB, suffixes=SUFFIXES)
    with pytest.raises(IndexBusy), staged_uploads(folder, [("a.md", b"new a"), ("b.md", b"new b")]) as paths:
        assert [p.read_bytes() for p in paths] == [b"new a", b"new b"]  # in place while indexing
        raise IndexBusy("index is being written by another process")
    assert sorted(p.name for p in folder.iterdir()) == ["a.md"]
    assert (folder / "a.md").read_bytes() == b"old a"


def test_staged_uploads_stay_when_indexing_succeeds(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    save_upload(folder, "a.md", b"old a", max_bytes=MB, suffixes=SUFFIXES)
    with staged_uploads(folder, [("a.md", b"new a"), ("b.md", b"new b")]) as paths:
        pass
    assert paths == [folder.resolve() / "a.md", folder.resolve() / "b.md"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.md", "b.md"]
    assert (folder / "a.md").read_bytes() == b"new a"
