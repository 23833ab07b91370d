"""Model provisioning with real pip, real wheels made here, and no network (--find-links)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ingest import provision, registry
from ingest.errors import ChecksumMismatch, ModelNotFound, ProvisioningError


def _make_wheel(folder: Path, package: str, version: str, payload: bytes) -> Path:
    """A minimal valid wheel whose data file is ``payload``."""
    module = package.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    dist = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{module}/__init__.py", "raise SystemExit('never import me')\n")
        whl.writestr(f"{module}/data/part.bin", payload)
        whl.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        whl.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        whl.writestr(f"{dist}/RECORD", "")
    return path


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture()
def three_part_model(tmp_path: Path) -> tuple[registry.ModelSpec, Path, bytes]:
    """A zip-layout model split over three wheels, like EmbeddingGemma's 25."""
    blob = _zip_bytes({"model_download/config.json": b'{"a": 1}', "model_download/w.bin": os.urandom(5000)})
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    cuts = [0, 1700, 3400, len(blob)]
    parts = []
    for i in range(3):
        name = f"docqa-test-part{i + 1}"
        _make_wheel(wheels, name, "1.0", blob[cuts[i] : cuts[i + 1]])
        parts.append(registry.Part(name, "1.0"))
    spec = registry.ModelSpec(
        name="test-model",
        role="embedder",
        parts=tuple(parts),
        assembled="test-model.zip",
        sha256=hashlib.sha256(blob).hexdigest(),
        size=len(blob),
        layout="zip",
        subfolder="model_download/",
        licence="Test-1.0",
        licence_text="test licence\n",
        description="test",
    )
    return spec, wheels, blob


def test_fetch_assembles_parts_in_order_and_verifies(three_part_model, tmp_path: Path) -> None:
    spec, wheels, _ = three_part_model
    folder = provision.fetch_spec(spec, tmp_path / "cache", find_links=wheels)
    assert json.loads((folder / "config.json").read_text()) == {"a": 1}
    assert (folder / "LICENSE.docqa.txt").read_text() == "test licence\n"
    stamp = json.loads((folder / registry.STAMP).read_text())
    assert stamp["assembled_sha256"] == spec.sha256
    assert set(stamp["files"]) == {"config.json", "w.bin", "LICENSE.docqa.txt"}
    assert registry.verify_folder(folder) == []
    # nothing half-written left behind
    assert not list((tmp_path / "cache" / ".work").glob("*"))


def test_parts_in_wrong_order_fail_the_checksum(three_part_model, tmp_path: Path) -> None:
    spec, wheels, _ = three_part_model
    swapped = dataclasses.replace(spec, parts=(spec.parts[1], spec.parts[0], spec.parts[2]))
    with pytest.raises(ChecksumMismatch, match="SHA-256"):
        provision.fetch_spec(swapped, tmp_path / "cache", find_links=wheels)
    assert not (tmp_path / "cache" / "test-model").exists()


def test_checksum_mismatch_leaves_no_model_and_names_the_fix(three_part_model, tmp_path: Path) -> None:
    spec, wheels, _ = three_part_model
    bad = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(ChecksumMismatch) as err:
        provision.fetch_spec(bad, tmp_path / "cache", find_links=wheels)
    assert "docqa models fetch test-model" in str(err.value)
    assert not (tmp_path / "cache" / "test-model").exists()


def test_fetch_is_idempotent_and_does_not_download_again(three_part_model, tmp_path: Path) -> None:
    spec, wheels, _ = three_part_model
    first = provision.fetch_spec(spec, tmp_path / "cache", find_links=wheels)
    mtime = (first / registry.STAMP).stat().st_mtime_ns
    for wheel in wheels.iterdir():  # the registry is gone: a second fetch must not need it
        wheel.unlink()
    again = provision.fetch_spec(spec, tmp_path / "cache", find_links=wheels)
    assert again == first
    assert (first / registry.STAMP).stat().st_mtime_ns == mtime


def test_a_generator_keeps_its_gguf_and_a_folder_fetched_before_gets_it(tmp_path: Path, monkeypatch) -> None:
    blob = b"GGUF" + os.urandom(3000)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _make_wheel(wheels, "docqa-test-gguf", "1.0", blob)
    spec = registry.ModelSpec(
        name="test-generator",
        role="generator",
        parts=(registry.Part("docqa-test-gguf", "1.0"),),
        assembled="test-generator.gguf",
        sha256=hashlib.sha256(blob).hexdigest(),
        size=len(blob),
        layout="gguf",
        subfolder="",
        licence="Test-1.0",
        licence_text="test licence\n",
        description="test",
    )

    def convert(gguf: Path, folder: Path) -> None:  # stands in for the minute-long conversion
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")

    monkeypatch.setattr(provision, "convert_gguf", convert)
    folder = provision.fetch_spec(spec, tmp_path / "cache", find_links=wheels)
    assert (folder / registry.GGUF_FILE).read_bytes() == blob
    assert registry.GGUF_FILE in json.loads((folder / registry.STAMP).read_text())["files"]
    assert registry.verify_folder(folder) == []

    # A folder fetched before the GGUF was kept: the next fetch adds only the GGUF.
    (folder / registry.GGUF_FILE).unlink()
    stamp = json.loads((folder / registry.STAMP).read_text())
    del stamp["files"][registry.GGUF_FILE]
    (folder / registry.STAMP).write_text(json.dumps(stamp))
    config_mtime = (folder / "config.json").stat().st_mtime_ns
    monkeypatch.setattr(provision, "convert_gguf", None)  # no conversion this time
    assert provision.fetch_spec(spec, tmp_path / "cache", find_links=wheels) == folder
    assert (folder / registry.GGUF_FILE).read_bytes() == blob
    assert (folder / "config.json").stat().st_mtime_ns == config_mtime
    assert json.loads((folder / registry.STAMP).read_text())["files"][registry.GGUF_FILE] == spec.sha256
    assert registry.verify_folder(folder) == []
    assert not list((tmp_path / "cache" / ".work").glob("*"))


def test_missing_package_is_a_clear_provisioning_error(three_part_model, tmp_path: Path) -> None:
    spec, _, _ = three_part_model
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProvisioningError, match=r"could not download docqa-test-part1==1\.0"):
        provision.fetch_spec(spec, tmp_path / "cache", find_links=empty)


def test_verify_detects_a_corrupted_file(three_part_model, tmp_path: Path) -> None:
    spec, wheels, _ = three_part_model
    folder = provision.fetch_spec(spec, tmp_path / "cache", find_links=wheels)
    with open(folder / "w.bin", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00corrupt\x00")
    assert registry.verify_folder(folder) == ["w.bin: checksum mismatch"]
    (folder / "config.json").unlink()
    assert "config.json: missing" in registry.verify_folder(folder)


def test_two_concurrent_fetches_build_one_model(three_part_model, tmp_path: Path) -> None:
    spec, wheels, _ = three_part_model
    script = (
        "import sys, json; from pathlib import Path; from ingest import provision, registry; "
        "spec = registry.ModelSpec(**json.loads(sys.argv[1]) | {'parts': tuple(registry.Part(*p) for p in json.loads(sys.argv[1])['parts'])}); "
        "print(provision.fetch_spec(spec, Path(sys.argv[2]), find_links=Path(sys.argv[3])))"
    )
    payload = json.dumps({**dataclasses.asdict(spec), "parts": [[p.package, p.version] for p in spec.parts]})
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, payload, str(cache), str(wheels)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert {o[0].strip() for o in outs} == {str(cache / "test-model")}
    assert registry.verify_folder(cache / "test-model") == []


def test_resolve_model_paths_and_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="docqa models fetch embeddinggemma-300m"):
        registry.resolve_model("embeddinggemma-300m", "embedder", tmp_path)
    with pytest.raises(ModelNotFound, match="is a generator"):
        registry.resolve_model("qwen2.5-coder-0.5b-instruct", "embedder", tmp_path)
    with pytest.raises(ModelNotFound, match="does not exist"):
        registry.resolve_model("./no/such/folder", "embedder", tmp_path)
    assert registry.resolve_model(str(tmp_path), "embedder", tmp_path) == str(tmp_path.resolve())
    assert registry.resolve_model("org/some-model", "embedder", tmp_path) == "org/some-model"


@pytest.mark.slow
def test_bundled_default_models_verify(models_dir: Path) -> None:
    """The real fetched models match their stamps (what 'docqa models verify' checks)."""
    for status in registry.list_models(models_dir, check=True):
        if status.default:
            assert status.ok, (status.name, status.problems)
            assert status.licence
            assert (status.path / "LICENSE.docqa.txt").is_file()


def _sdist_that_runs_code(folder: Path, marker: Path) -> None:
    """An sdist whose in-tree build backend writes ``marker`` when pip asks it for metadata."""
    import io
    import tarfile

    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n",
        "PKG-INFO": "Metadata-Version: 2.1\nName: docqa-test-sdist\nVersion: 1.0\n",
    }
    folder.mkdir()
    with tarfile.open(folder / "docqa_test_sdist-1.0.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"docqa_test_sdist-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_pip_download_takes_wheels_only_so_no_build_code_runs(tmp_path: Path) -> None:
    part = registry.Part("docqa-test-sdist", "1.0")
    command = provision.pip_download_command(part, tmp_path / "dl", tmp_path / "links")
    assert "--only-binary=:all:" in command and command[-1] == "docqa-test-sdist==1.0"

    marker = tmp_path / "build-code-ran"
    _sdist_that_runs_code(tmp_path / "links", marker)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and not marker.exists()
    # Without the option pip runs the sdist's own code: what the option is there to prevent.
    unsafe = [arg for arg in command if arg != "--only-binary=:all:"]
    subprocess.run(unsafe, capture_output=True, text=True, timeout=120)
    assert marker.exists()
