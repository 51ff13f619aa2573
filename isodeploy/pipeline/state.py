"""Stage bookkeeping for ``prune-export``: what each stage was run with, so a re-run can skip it.

The record lives in ``DIR/isodeploy.json`` under ``"pipeline"`` (next to the pruning spec, so the
folder stays a MODEL every command accepts). A stage is skipped when the hash of its inputs and
options equals the recorded one and all its outputs still exist; ``--force`` redoes every stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from isodeploy.fileio import sha256_file

STATE_FILE = "isodeploy.json"


@dataclass
class StageRecord:
    name: str
    key: str
    seconds: float
    outputs: list[str]
    status: str = "done"  # done | skipped | failed | unavailable
    detail: dict[str, Any] = field(default_factory=dict)


def file_digest(path: Path) -> str:
    """sha256 of a file (and of its external-data side file, which must travel with an ONNX)."""
    parts = [p for p in (Path(path), Path(str(path) + ".data")) if p.is_file()]
    return "+".join(sha256_file(p) for p in parts)


def stage_key(name: str, options: dict[str, Any], inputs: list[Path]) -> str:
    payload = {"stage": name, "options": options, "inputs": {str(p.name): file_digest(p) for p in inputs}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_state(folder: Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Atomic write of the whole JSON (temp file + rename)."""
    folder = Path(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{STATE_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2, default=str)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StageBook:
    """Reads and records stage keys in the folder's state file."""

    def __init__(self, folder: Path, force: bool) -> None:
        self.folder = Path(folder)
        self.force = force
        self.records: list[StageRecord] = []

    def recorded(self, name: str) -> dict[str, Any] | None:
        return read_state(self.folder).get("pipeline", {}).get("stages", {}).get(name)

    def is_fresh(self, name: str, key: str) -> bool:
        if self.force:
            return False
        old = self.recorded(name)
        if not old or old.get("key") != key or old.get("status") != "done":
            return False
        return all((self.folder / out).exists() for out in old.get("outputs", []))

    def record(self, record: StageRecord) -> None:
        self.records.append(record)
        if record.status == "skipped":
            return
        state = read_state(self.folder)
        pipeline = state.setdefault("pipeline", {})
        pipeline.setdefault("stages", {})[record.name] = asdict(record)
        pipeline["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_state(self.folder, state)


def clean_stale_temporaries(folder: Path) -> list[str]:
    """Remove temp files a killed run left behind (``.name.*.tmp`` and staging folders)."""
    removed = []
    for path in Path(folder).glob(".*"):
        if ".tmp" in path.name or ".raw." in path.name or path.name.startswith(".model."):
            if path.is_dir():
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
