"""Which entries of an output folder are isodeploy's: the marker ``.isodeploy-owned.json``.

isodeploy replaces only the entries the marker lists and refuses a folder of someone else's files; an
edited entry (a path with separators, ``..``) is dropped, never followed.
"""

from __future__ import annotations

from pathlib import Path

from isodeploy.core.jsonread import read_json_quietly
from isodeploy.core.safe_write import write_json_atomic

OWNER_FILE = ".isodeploy-owned.json"
LOCK_FILE = ".isodeploy.lock"


def read_owned(folder: Path) -> set[str] | None:
    """The names isodeploy recorded as its own in ``folder``; None when there is no (valid) marker."""
    data = read_json_quietly(Path(folder) / OWNER_FILE)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        return None
    return {f for f in files if isinstance(f, str) and safe_name(f)}  # an edited entry is dropped, never followed


def safe_name(name: str) -> bool:
    """A top-level entry name: no separators, no '..', not the marker/lock."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..", OWNER_FILE, LOCK_FILE)


def write_owned(folder: Path, files: set[str]) -> None:
    from isodeploy.core.version import __version__

    write_json_atomic(Path(folder) / OWNER_FILE, {"written_by": f"isodeploy {__version__}", "files": sorted(files)})
