"""Leaving files out: FOLDER/.docqaignore and --exclude patterns (real folders, real index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import NothingToIndex
from ingest.pipeline import ingest_folder
from ingest.scan import is_ignored, read_ignore
from ingest.settings import Settings
from ingest.store import open_index
from tests.fakes import HashEmbedder

EMB = HashEmbedder(dim=16)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "drafts").mkdir(parents=True)
    (docs / "manuals").mkdir()
    (docs / "README.md").write_text("# About this folder\n\nNotes for whoever maintains it.")
    (docs / "manuals" / "scope.md").write_text("# Scope\n\nThe oscilloscope shows four channels.")
    (docs / "manuals" / "README.md").write_text("# Manuals\n\nOne file per product.")
    (docs / "drafts" / "new.md").write_text("# Draft\n\nNot reviewed yet.")
    (docs / "notes.txt").write_text("Battery lasts ten hours.")
    return docs


def _indexed(index_dir: Path) -> list[str]:
    with open_index(index_dir) as index:
        return sorted(f.path for f in index.files())


@pytest.mark.parametrize(
    ("rel", "is_dir", "patterns", "expected"),
    [
        ("README.md", False, ["README.md"], True),
        ("manuals/README.md", False, ["README.md"], True),  # a bare name matches at any depth
        ("manuals/README.md", False, ["/README.md"], False),  # with a slash: from the top only
        ("README.md", False, ["/README.md"], True),
        ("drafts", True, ["drafts/"], True),
        ("drafts", False, ["drafts/"], False),  # a trailing slash matches folders only
        ("manuals/scope.md", False, ["manuals/*.md"], True),
        ("manuals/scope.md", False, ["*.txt", "*.pdf"], False),
        ("notes.TXT", False, ["*.txt"], False),  # case matters, as in git
    ],
)
def test_patterns(rel, is_dir, patterns, expected):
    assert is_ignored(rel, is_dir, patterns) is expected


def test_ignore_file_lines_comments_and_blanks(folder):
    assert read_ignore(folder) == []
    (folder / ".docqaignore").write_text("# not documents\n\nREADME.md\n  drafts/  \n")
    assert read_ignore(folder) == ["README.md", "drafts/"]


def test_ignored_files_are_not_indexed_nor_reported(folder, tmp_path):
    (folder / ".docqaignore").write_text("README.md\ndrafts/\n")
    settings = Settings(index_dir=tmp_path / "ix")
    report = ingest_folder(folder, settings.index_dir, EMB, settings, exclude=["*.txt"])
    assert sorted(report.added) == ["manuals/scope.md"] and not report.skipped
    assert _indexed(settings.index_dir) == ["manuals/scope.md"]


def test_a_file_ignored_later_leaves_the_index(folder, tmp_path):
    settings = Settings(index_dir=tmp_path / "ix")
    ingest_folder(folder, settings.index_dir, EMB, settings)
    assert "drafts/new.md" in _indexed(settings.index_dir)
    (folder / ".docqaignore").write_text("drafts/\n")
    report = ingest_folder(folder, settings.index_dir, EMB, settings)
    assert report.removed == ("drafts/new.md",) and "drafts/new.md" not in _indexed(settings.index_dir)


def test_ignoring_everything_is_a_clear_error(folder, tmp_path):
    settings = Settings(index_dir=tmp_path / "ix")
    with pytest.raises(NothingToIndex):
        ingest_folder(folder, settings.index_dir, EMB, settings, exclude=["*"])
