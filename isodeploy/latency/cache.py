"""Where latency tables live and when one may be reused: a fingerprint of machine, runtime, threads,
batch and the model's structure.

The cache is the one thing isodeploy writes outside ``-o``: ``$ISODEPLOY_CACHE_DIR`` or
``$XDG_CACHE_HOME/isodeploy`` or ``~/.cache/isodeploy``, sub-folder ``latency/`` (docs/reliability.md).
A table from ``--latency-table PATH`` must match the fingerprint except for what does not change
latency (the host name is not in it, so machines of one kind share a table).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError
from isodeploy.latency.table import TABLE_SCHEMA, LatencyTable

#: Fingerprint entries a reused table must match (all of them: the table's numbers depend on each).
FINGERPRINT_KEYS = ("schema", "structure", "runtime", "runtime_version", "device", "processor", "cores", "threads",
                    "batch", "precision", "grid", "round_to", "max_group_ratio")


def cache_root() -> Path:
    """The user's cache folder for isodeploy (created on first write, never at import)."""
    env = os.environ.get("ISODEPLOY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "isodeploy"


def structure_digest(grouping: Any, input_shape: list[int]) -> str:
    """The model as latency sees it: its classes (topology signature, groups, widths) and input shape."""
    classes = [[iso.kind, iso.signature, [grouping.groups[i].width for i in iso.group_ids]] for iso in grouping.classes]
    text = json.dumps({"classes": classes, "input": list(input_shape)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(*, model: str, structure: str, runtime: str, runtime_version: str, device: str, processor: str, cores: int,
                threads: int, batch: int, precision: str, grid: list[float], round_to: int, max_group_ratio: float) -> dict[str, Any]:
    """``model`` names the file for people; the ``structure`` digest, not the name, decides reuse
    (``prune torchvision:resnet50`` and ``prune-export`` of it share a table)."""
    return {"schema": TABLE_SCHEMA, "model": model, "structure": structure, "runtime": runtime, "runtime_version": runtime_version,
            "device": device, "processor": processor, "cores": cores, "threads": threads, "batch": batch, "precision": precision,
            "grid": [round(g, 4) for g in grid], "round_to": round_to, "max_group_ratio": round(float(max_group_ratio), 6),
            "machine": platform.machine()}


def key_of(fp: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({k: fp.get(k) for k in FINGERPRINT_KEYS}, sort_keys=True).encode()).hexdigest()[:16]


def cache_file(fp: dict[str, Any]) -> Path:
    """``latency/<model>-<key>.json``; an existing file of the same key under another model name is reused."""
    folder, key = cache_root() / "latency", key_of(fp)
    if folder.is_dir():
        found = sorted(p for p in folder.glob(f"*-{key}.json") if p.is_file())
        if found:
            return found[0]
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(fp["model"]))[:60]
    return folder / f"{slug}-{key}.json"


def mismatch(table: LatencyTable, fp: dict[str, Any]) -> str | None:
    """The first fingerprint entry where ``table`` differs from this run, as 'threads 2 ≠ 4'; None if it fits."""
    if not isinstance(table.fingerprint, dict):
        return "the table has no fingerprint"
    for k in FINGERPRINT_KEYS:
        if table.fingerprint.get(k) != fp.get(k):
            return f"{k} {table.fingerprint.get(k)!r} in the table ≠ {fp.get(k)!r} here"
    return None


def load_table(path: Path, fp: dict[str, Any], *, explicit: bool) -> LatencyTable | None:
    """The table at ``path`` if it fits ``fp``. A cached file that does not fit is ignored (None); one the
    user named (``explicit``) that is missing is None (it will be built there), one that does not fit is an error."""
    from isodeploy.core.jsonread import read_json_file

    if not path.is_file():
        if explicit and path.exists():
            raise IsodeployError(f"--latency-table '{path}' is not a regular file; pass a .json file path")
        return None
    what = f"--latency-table '{path}'" if explicit else f"the cached latency table '{path}'"
    try:
        table = LatencyTable.from_dict(read_json_file(path, what), what)
    except IsodeployError:
        if explicit:
            raise
        return None  # a damaged cache entry is rebuilt, not an error
    why = mismatch(table, fp)
    if why is None:
        return table
    if explicit:
        raise IsodeployError(f"--latency-table '{path}' was measured for another setting ({why}); "
                             "drop --latency-table to build one here, or pass a table from this kind of machine and settings")
    return None


def save_table(path: Path, table: LatencyTable) -> None:
    from isodeploy.core.safe_write import cannot_write, write_json_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(path.parent, exc) from None
    write_json_atomic(path, table.to_dict())
