"""The clean-up that knows its own names: it removes only temporaries isodeploy made, never a user's file.

What it removes (docs/reliability.md, "Temporaries and their clean-up"):

* ``.isodeploy-tmp-<pid>-<8 hex>-<name>`` whose PID is no longer alive: every temporary file and
  work folder isodeploy makes is named so (``core.safe_write``), in the folder it writes into;
* in an output folder whose lock is held, the exact shapes older isodeploy versions used for their
  temporaries (``tempfile``'s 8 random characters after an artifact's own name), folders only when
  they hold nothing but what isodeploy put there;
* ``isodeploy-bench-<pid>-*`` and ``isodeploy-triton-check-<pid>-*`` in the system temp dir, of dead
  PIDs and our own user.

It never looks outside the folder it was given (no sibling of ``-o``), never follows a link and never
matches a name merely *containing* ``.tmp-`` or ``.old-``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable

from isodeploy.core.safe_write import TEMP_PREFIX, remove_quietly

SYSTEM_TEMP_PREFIXES = ("isodeploy-bench-", "isodeploy-triton-check-")
_TEMP_RE = re.compile(r"^\.isodeploy-tmp-(\d+)-[0-9a-f]{8}-(.+)$")
_SYSTEM_TEMP_RE = re.compile(r"^isodeploy-(?:bench|triton-check)-(\d+)-")
_RAND = r"[a-z0-9_]{8}"  # tempfile's random part
LEGACY_TEMP_AGE_S = 12 * 3600  # system temps without a PID in their name: stale after this long


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_owner(name: str) -> tuple[int, str] | None:
    """(PID, target name) of one of our temporaries' names; None for any other name."""
    match = _TEMP_RE.match(name)
    return (int(match.group(1)), match.group(2)) if match else None


def _legacy_kind(name: str, known: Iterable[str]) -> str | None:
    """'file' or 'dir' when ``name`` has the exact shape an older isodeploy gave a temporary of ``known``."""
    if re.fullmatch(rf"\.isodeploy-build-{_RAND}", name):
        return "dir"
    for artifact in known:
        stem = re.escape(artifact)
        if re.fullmatch(rf"\.{stem}\.{_RAND}\.tmp", name):
            return "file"
        if re.fullmatch(rf"\.{stem}\.(raw\.|fp32\.)?{_RAND}", name):
            return "dir"
    return None


def _only_ours(folder: Path, artifact_names: set[str]) -> bool:
    """A legacy work folder holds nothing but ONNX/engine files isodeploy wrote there (no sub-folders, no links)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    allowed = artifact_names | {"raw.onnx", "fp32.onnx", "model.fp16.onnx", "engine.plan", "engine.plan.json"}
    return all(e.is_file() and not e.is_symlink() and (e.name in allowed or e.name.endswith((".onnx.data", ".onnx", ".data")))
               for e in entries)


def is_our_temp(name: str, known_names: Iterable[str] = ()) -> bool:
    """A temporary of ours (this or an older isodeploy): it does not make a folder someone else's."""
    return temp_owner(name) is not None or _legacy_kind(name, [k for k in known_names if k]) is not None


def clean_stale_temps(folder: Path, known_names: Iterable[str] = (), legacy: bool = True) -> list[str]:
    """Remove temporaries of dead runs from ``folder`` (its top level only); returns the names removed.

    ``legacy`` (only with the folder's lock held) also removes the exact old-style temporaries of
    ``known_names``, the folder's own artifacts.
    """
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return []
    known = [k for k in known_names if k]
    removed = []
    for entry in folder.iterdir():
        name = entry.name
        owner = temp_owner(name)
        if owner is not None:
            stale = not pid_alive(owner[0])
        elif legacy and (kind := _legacy_kind(name, known)) is not None:
            if entry.is_symlink():
                stale = False
            elif kind == "file":
                stale = entry.is_file()
            else:
                stale = entry.is_dir() and _only_ours(entry, set(known))
        else:
            stale = False
        if stale:
            remove_quietly(entry)
            removed.append(name)
    return removed


def clean_target_temps(target: Path) -> list[str]:
    """Remove dead runs' temporaries made for ``target`` (an ``export -o FILE`` killed mid-way) from its
    folder, which isodeploy does not own: only our own PID-tagged names for this very target."""
    target = Path(target)
    folder = target.parent
    if not folder.is_dir():
        return []
    removed = []
    try:
        entries = list(folder.glob(f"{TEMP_PREFIX}*"))
    except OSError:
        return []
    for entry in entries:
        owner = temp_owner(entry.name)
        if owner is None or pid_alive(owner[0]) or not owner[1].startswith(target.name):
            continue
        rest = owner[1][len(target.name):]
        if rest in ("", ".data", ".raw", ".fp32", ".build") and _mine(entry):
            remove_quietly(entry)
            removed.append(entry.name)
    for entry in folder.glob(f".{glob_escape(target.name)}.*"):  # an older isodeploy's, checked by shape and content
        kind = _legacy_kind(entry.name, [target.name])
        if kind is None or entry.is_symlink() or not _mine(entry):
            continue
        if (entry.is_file() if kind == "file" else entry.is_dir() and _only_ours(entry, {target.name})):
            remove_quietly(entry)
            removed.append(entry.name)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _mine(path: Path) -> bool:
    try:
        return os.lstat(path).st_uid == os.getuid()
    except OSError:
        return False


def clean_system_temps() -> list[str]:
    """Remove isodeploy's work folders of dead runs from the system temp dir."""
    root = Path(tempfile.gettempdir())
    removed = []
    try:
        entries = [e for prefix in SYSTEM_TEMP_PREFIXES for e in root.glob(f"{prefix}*")]
    except OSError:
        return []
    for entry in entries:
        match = _SYSTEM_TEMP_RE.match(entry.name)
        try:
            if match:
                stale = not pid_alive(int(match.group(1)))
            else:
                stale = time.time() - entry.stat().st_mtime > LEGACY_TEMP_AGE_S
            if stale and entry.is_dir() and not entry.is_symlink() and entry.stat().st_uid == os.getuid():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        except OSError:
            continue
    return removed
