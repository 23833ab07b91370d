"""``docqa ingest``: index a folder incrementally, or remove documents; print a report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ingest.control import printable
from ingest.records import IngestReport
from rag.cli.common import index_option, models_dir_option, settings_from

_MAX_LISTED = 50  # skipped files and warnings printed one per line; --json has them all


@click.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@index_option
@click.option(
    "--embedder", default=None, help="Embedder: a bundled name or a model folder (must match the index)."
)
@click.option(
    "--remove",
    "remove",
    multiple=True,
    metavar="PATH",
    help="Remove this document from the index (its path, or the name it is cited by). Repeatable.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Leave out files or folders matching GLOB (as in FOLDER/.docqaignore: 'drafts/', "
    "'*.txt', 'old/*.pdf'). Repeatable.",
)
@click.option("--keep-missing", is_flag=True, help="Keep documents whose files are gone from FOLDER.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), default=None, help="A docqa.toml file."
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Read and embed files on Ray workers: alone, a Ray runtime on this machine; or a cluster's "
    "ADDRESS (auto, ray://HOST:PORT, HOST:PORT). Every node must see FOLDER at the same path.",
)
@click.option(
    "--ray-workers",
    type=click.IntRange(min=1),
    default=None,
    help="Ray workers (one CPU and one model each; default: every CPU of the cluster).",
)
@models_dir_option
def ingest(
    folder: Path | None,
    index_dir: Path | None,
    embedder: str | None,
    remove: tuple[str, ...],
    exclude: tuple[str, ...],
    keep_missing: bool,
    as_json: bool,
    config: Path | None,
    ray_address: str | None,
    ray_workers: int | None,
    models_dir: Path | None,
) -> None:
    """Index the documents in FOLDER (PDF, EPUB, HTML, Markdown, text, DOCX).

    Reruns only parse and embed what changed; files gone from FOLDER leave the index.
    Unreadable files are skipped and listed with the reason. Files matching a pattern of
    FOLDER/.docqaignore (one per line, like .gitignore) or --exclude are left out.

    \b
    Example:
      docqa ingest ~/manuals
      docqa ingest ~/manuals --index ./index --embedder all-minilm-l6-v2
      docqa ingest --remove ~/manuals/old-model.pdf
      docqa ingest ~/manuals --exclude 'drafts/' --exclude '*.txt'
      docqa ingest ~/manuals --json > report.json
      docqa ingest ~/manuals --config ~/docqa.toml
      docqa ingest ~/manuals --ray --ray-workers 4
      docqa ingest /shared/manuals --ray 10.0.0.5:6379
    """
    from ingest.pipeline import check_folder, ingest_folder, remove_document

    settings = settings_from(config, index_dir=index_dir, embedder=embedder, models_dir=models_dir)
    for path in remove:
        found = remove_document(settings.index_dir, path, settings)
        click.echo(f"{'removed' if found else 'not in the index'}: {path}", err=True)
    if folder is None:
        if not remove:
            raise click.UsageError("give a FOLDER to index, or --remove PATH")
        return
    check_folder(folder, settings, exclude)  # checked again by ingest_folder; here before loading a model
    from ingest.embedders import embedder_name, load_embedder
    from ingest.store import check_index

    check_index(settings.index_dir, embedder_name(settings))  # a mismatch: say so before loading a model
    if ray_workers is not None and ray_address is None:
        raise click.UsageError("--ray-workers needs --ray")
    extra: dict = {}
    if ray_address is not None:  # Ray is imported only here
        from ingest.ray_ingest import RayOptions, ingest_folder_on_ray

        where = None if ray_address == "local" else ray_address
        with _Bar() as bar:
            report, run = ingest_folder_on_ray(
                folder,
                settings.index_dir,
                settings,
                RayOptions(address=where, workers=ray_workers),
                progress=bar.update,
                remove_missing=not keep_missing,
                exclude=exclude,
            )
        extra = {"ray": dataclasses.asdict(run)}
        nodes = ", ".join(f"{node[:12]}: {n}" for node, n in run.files_by_node.items()) or "none"
        click.echo(
            f"ray ({run.address}): {run.workers} workers ready in {run.startup_seconds:.1f} s; "
            f"files read per node: {nodes}",
            err=True,
        )
    else:
        model = load_embedder(settings)
        with _Bar() as bar:
            report = ingest_folder(
                folder,
                settings.index_dir,
                model,
                settings,
                progress=bar.update,
                remove_missing=not keep_missing,
                exclude=exclude,
            )
    if as_json:
        data = {
            "folder": str(folder),
            "index": str(settings.index_dir),
            **dataclasses.asdict(report),
            **extra,
        }
        click.echo(json.dumps(data, indent=1, ensure_ascii=False))
    else:
        click.echo(_summary(report, folder, settings.index_dir))


def _summary(report: IngestReport, folder: Path, index_dir: Path) -> str:
    lines = [
        f"{folder} -> {index_dir} in {report.seconds:.1f} s: {len(report.added)} added, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged, {len(report.removed)} removed, "
        f"{len(report.skipped)} skipped; {report.chunks_added - report.chunks_reused} chunks embedded"
        + (f", {report.chunks_reused} kept their vectors" if report.chunks_reused else "")
    ]
    for title, items in (("skipped", report.skipped), ("warnings", report.warnings)):
        if items:
            lines.append(f"{title}:")
            # a file's name can hold escape sequences a terminal would obey
            lines += [f"  {printable(s.path)}: {printable(s.reason)}" for s in items[:_MAX_LISTED]]
            if len(items) > _MAX_LISTED:
                lines.append(f"  ... and {len(items) - _MAX_LISTED} more (--json lists all)")
    return "\n".join(lines)


class _Bar:
    """A tqdm bar on stderr: bytes of the files to parse (a fair ETA), with files and chunks."""

    def __enter__(self) -> _Bar:
        from tqdm import tqdm

        self._bar = tqdm(total=0, unit="B", unit_scale=True, desc="ingest", dynamic_ncols=True, leave=True)
        return self

    def update(self, p) -> None:  # p: ingest.pipeline.Progress
        self._bar.total = p.bytes_total
        note = f", {p.note}" if p.note else ""  # e.g. "OCR page 3/40 of manual.pdf"
        self._bar.set_postfix_str(
            f"files {p.files_done}/{p.files_total}, chunks {p.chunks_done}{note}", refresh=False
        )
        self._bar.update(p.bytes_done - self._bar.n)  # update(), not n =: tqdm's rate and ETA need it

    def __exit__(self, *_: object) -> None:
        self._bar.close()
