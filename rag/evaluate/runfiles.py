"""The files of a run folder, written so that a run can be killed at any moment and resumed.

- ``run.json``: the run's configuration and signature; a different run in the folder is refused.
- ``results.jsonl``: one ``QuestionResult`` a line, appended as each question finishes.
- ``results.json``: written at the end (``run.evaluate``).

Whole files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ingest.errors import DocqaError
from rag.evaluate.results import QuestionResult

PARTIAL = "results.jsonl"
CONFIG = "run.json"
RESULTS = "results.json"


def prepare(out_dir: Path, config: Mapping[str, Any], resume: bool) -> dict[str, QuestionResult]:
    """Prepare ``out_dir``; return the results an earlier run of the same signature left."""
    out_dir.mkdir(parents=True, exist_ok=True)
    partial, config_file = out_dir / PARTIAL, out_dir / CONFIG
    done: dict[str, QuestionResult] = {}
    if resume and partial.is_file() and config_file.is_file():
        earlier = json.loads(config_file.read_text(encoding="utf-8"))
        if earlier.get("signature") != config["signature"]:
            raise DocqaError(
                f"{out_dir} holds another run (other questions or settings); "
                "use another --out, or --restart to overwrite it"
            )
        done = _read_partial(partial)
    write_json(config_file, dict(config))
    # Rewrite the partial file with the good records only: a run killed mid-line leaves half a
    # line, and appending after it would corrupt the next record.
    write_text(partial, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in done.values()))
    return done


def _read_partial(path: Path) -> dict[str, QuestionResult]:
    done: dict[str, QuestionResult] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            result = QuestionResult.from_json(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # the line a killed run was writing
        done[result.id] = result
    return done


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
