"""Stage bookkeeping for ``prune-export``: what each stage was run with, so a re-run can skip it.

The record lives in ``DIR/isodeploy.json`` under ``"pipeline"`` (next to the pruning spec, so the
folder stays a MODEL every command accepts). A stage is skipped when the hash of its inputs and
options equals the recorded one and its outputs still exist *with the recorded content* (a file
replaced by hand re-runs the stage that wrote it); ``--force`` redoes every stage.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from isodeploy.core.cleanup import clean_stale_temps
from isodeploy.core.hashing import sha256_file, tree_digest
from isodeploy.core.safe_write import write_json_atomic

STATE_FILE = "isodeploy.json"


@dataclass
class StageRecord:
    name: str
    key: str
    seconds: float
    outputs: list[str]
    status: str = "done"  # done | skipped | failed | unavailable
    detail: dict[str, Any] = field(default_factory=dict)
    output_digests: dict[str, str] = field(default_factory=dict)  # content of each output when recorded


def file_digest(path: Path) -> str:
    """sha256 of a file (and of its external-data side file, which must travel with an ONNX)."""
    parts = [p for p in (Path(path), Path(str(path) + ".data")) if p.is_file()]
    return "+".join(sha256_file(p) for p in parts)


def stage_key(name: str, options: dict[str, Any], inputs: list[Path]) -> str:
    payload = {"stage": name, "options": options, "inputs": {str(p.name): file_digest(p) for p in inputs}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_digest(folder: Path, out: str) -> str:
    """Content hash of one output (file or folder); of the state file, its spec without the stage
    record (which changes with every stage)."""
    path = Path(folder) / out
    if out == STATE_FILE:
        state = {k: v for k, v in read_state(folder).items() if k != "pipeline"}
        return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()
    return tree_digest(path)


def output_digests(folder: Path, outputs: Iterable[str]) -> dict[str, str]:
    """Content hash of every output that exists."""
    return {out: output_digest(folder, out) for out in outputs if (Path(folder) / out).exists()}


def read_state(folder: Path) -> dict[str, Any]:
    """The folder's ``isodeploy.json`` as a dict; {} when absent or unreadable (stages then re-run)."""
    path = Path(folder) / STATE_FILE
    from isodeploy.core.jsonread import read_json_quietly

    state = read_json_quietly(path)
    return state if isinstance(state, dict) else {}


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Atomic write of the whole JSON (temp file + rename)."""
    write_json_atomic(Path(folder) / STATE_FILE, state)


class StageBook:
    """Reads and records stage keys in the folder's state file."""

    def __init__(self, folder: Path, force: bool) -> None:
        self.folder = Path(folder)
        self.force = force
        self.records: list[StageRecord] = []

    def recorded(self, name: str) -> dict[str, Any] | None:
        pipeline = read_state(self.folder).get("pipeline")
        stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
        record = stages.get(name) if isinstance(stages, dict) else None
        return record if isinstance(record, dict) else None

    def is_fresh(self, name: str, key: str) -> bool:
        """Same key, done, and every output still there with the content recorded for it."""
        if self.force:
            return False
        old = self.recorded(name)
        if not old or old.get("key") != key or old.get("status") != "done":
            return False
        outputs, digests = old.get("outputs"), old.get("output_digests")
        if not isinstance(outputs, list) or not isinstance(digests, dict):
            return False  # a record without output hashes can't prove its outputs are its own
        return all(isinstance(out, str) and (self.folder / out).exists() and digests.get(out) == output_digest(self.folder, out)
                   for out in outputs)

    def forget(self, name: str) -> None:
        """Drop a stage's record before it runs again, so a run killed inside it re-runs it."""
        state = read_state(self.folder)
        stages = state.get("pipeline", {}).get("stages") if isinstance(state.get("pipeline"), dict) else None
        if isinstance(stages, dict) and name in stages:
            del stages[name]
            write_state(self.folder, state)

    def record(self, record: StageRecord) -> None:
        self.records.append(record)
        if record.status == "skipped":
            return
        record.output_digests = output_digests(self.folder, record.outputs)
        state = read_state(self.folder)
        pipeline = state.get("pipeline") if isinstance(state.get("pipeline"), dict) else {}
        state["pipeline"] = pipeline
        if not isinstance(pipeline.get("stages"), dict):
            pipeline["stages"] = {}
        pipeline["stages"][record.name] = asdict(record)
        pipeline["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_state(self.folder, state)


def clean_stale_temporaries(folder: Path, known_names: Iterable[str] = ()) -> list[str]:
    """Remove temporaries a killed run left behind (see :func:`isodeploy.core.cleanup.clean_stale_temps`);
    call it holding the folder's lock."""
    return clean_stale_temps(folder, known_names)
