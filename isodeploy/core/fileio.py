"""The one owner of how isodeploy writes files: output-folder ownership with a per-folder lock, on
top of :mod:`isodeploy.core.safe_write` (atomic writes that never follow a link or replace a
non-regular file) and :mod:`isodeploy.core.cleanup` (the clean-up that knows its own names).

* **Atomic**: every file is written to a temporary in the same folder and renamed into place, so a
  reader (or a killed run) never sees half a file.
* **Temporaries** are named ``.isodeploy-tmp-<pid>-<rand>-<name>``; one whose PID is no longer alive
  was left by a killed run and is removed by the next run.
* **Links**: a symbolic link at or inside an entry isodeploy owns is refused, never followed.
* **Ownership**: an output folder holds ``.isodeploy-owned.json``, the list of what isodeploy wrote
  there. isodeploy replaces only those entries and refuses a folder of someone else's files.
* **Lock**: ``.isodeploy.lock`` (``fcntl.flock``) serialises runs into one folder; a second run waits
  ``ISODEPLOY_LOCK_WAIT`` seconds (default 5) and then fails with one line naming the holder's PID.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from isodeploy.core.cleanup import (  # noqa: F401 - re-exported: the one clean-up
    clean_stale_temps,
    clean_system_temps,
    clean_target_temps,
    is_our_temp,
    pid_alive,
)
from isodeploy.core.errors import IsodeployError
from isodeploy.core.safe_write import (  # noqa: F401 - re-exported: the one way files are put in place
    TEMP_PREFIX,
    atomic_path,
    cannot_write,
    check_target,
    make_temp_dir,
    new_temp_file,
    open_lock_file,
    remove_quietly,
    replace_into,
    temp_path,
    write_bytes_atomic,
    write_text_atomic,
)

OWNER_FILE = ".isodeploy-owned.json"
LOCK_FILE = ".isodeploy.lock"
SYSTEM_TEMP_PREFIX = "isodeploy-bench-"  # bench work folders in the system temp dir


# -- hashes -------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's relative names and file contents (a Triton repo, finetune/)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(TEMP_PREFIX)):
        digest.update(str(item.relative_to(path)).encode() + b"\0" + sha256_file(item).encode())
    return digest.hexdigest()


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON through a temp file and rename, so a reader never sees half a file."""
    if is_dataclass(payload) and not isinstance(payload, type):
        payload = asdict(payload)
    text = json.dumps(payload, indent=2, default=str) + "\n"
    write_text_atomic(Path(path), text)


def read_json_quietly(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing, a link, unreadable, invalid or too deep
    (the bounded reader, :mod:`isodeploy.core.jsonread`)."""
    from isodeploy.core.jsonread import read_json_quietly as quiet

    return quiet(path)


# -- ownership ----------------------------------------------------------------------------------
def read_owned(folder: Path) -> set[str] | None:
    """The names isodeploy recorded as its own in ``folder``; None when there is no (valid) marker."""
    data = read_json_quietly(Path(folder) / OWNER_FILE)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        return None
    return {f for f in files if isinstance(f, str) and _safe_name(f)}  # an edited entry is dropped, never followed


def _safe_name(name: str) -> bool:
    """A top-level entry name: no separators, no '..', not the marker/lock."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..", OWNER_FILE, LOCK_FILE)


def _write_owned(folder: Path, files: set[str]) -> None:
    from isodeploy import __version__

    write_json_atomic(Path(folder) / OWNER_FILE, {"written_by": f"isodeploy {__version__}", "files": sorted(files)})


def _acquire_lock(folder: Path, wait_s: float) -> int:
    path = folder / LOCK_FILE
    deadline = time.monotonic() + wait_s
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cannot_write(folder, exc) from None
        fd = open_lock_file(path)  # never through a link, never onto another file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if time.monotonic() >= deadline:
                raise IsodeployError(f"-o {folder} is in use by another isodeploy run (pid {holder}); "
                                     "wait for it to finish or choose another folder") from None
            time.sleep(0.1)
            continue
        try:  # the holder before us may have removed the file: our lock must be on the live one
            same = os.fstat(fd).st_ino == os.lstat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd


def lock_wait_s() -> float:
    try:
        return max(0.0, float(os.environ.get("ISODEPLOY_LOCK_WAIT", "5")))
    except ValueError:
        return 5.0


class OutputFolder:
    """An output folder this run holds the lock of; :meth:`claim` before writing an entry."""

    def __init__(self, path: Path, owned: set[str], created: bool) -> None:
        self.path = path
        self.owned = owned
        self.created = created

    def claim(self, *names: str) -> None:
        """Record ``names`` (top-level entries) as isodeploy's; refuse one that exists and is not."""
        new = set()
        for name in names:
            top = Path(name).parts[0] if Path(name).parts else ""
            if not _safe_name(top):
                raise ValueError(f"not a top-level entry name: {name!r}")
            if top in self.owned:
                continue
            entry = self.path / top
            if entry.exists() or entry.is_symlink():
                raise IsodeployError(f"{entry} exists and was not written by isodeploy; move it away or choose another -o")
            new.add(top)
        if new:
            self.owned |= new
            _write_owned(self.path, self.owned)

    def clean(self, known_names: Iterable[str] = ()) -> list[str]:
        """Leftovers of killed runs, by their own names only: in the folder (PID-tagged temporaries and
        the exact old-style shapes of its artifacts) and, PID-tagged only, in the sub-folders it owns."""
        removed = clean_stale_temps(self.path, set(known_names) | self.owned)
        for name in sorted(self.owned):
            sub = self.path / name
            if sub.is_dir() and not sub.is_symlink():
                removed += [f"{name}/{n}" for n in clean_stale_temps(sub, legacy=False)]
        return removed


def refuse_links(folder: Path, names: Iterable[str]) -> None:
    """Refuse a symbolic link at, or anywhere inside, the entries ``names`` of ``folder`` (isodeploy's own):
    a folder that arrived by tarball or CI artifact with its links must never steer a write elsewhere."""
    for name in sorted(set(names)):
        entry = Path(folder) / name
        found = entry if entry.is_symlink() else None
        if found is None and entry.is_dir():
            for root, dirs, files in os.walk(entry):
                found = next((Path(root) / n for n in sorted(dirs + files) if os.path.islink(os.path.join(root, n))), None)
                if found is not None:
                    break
        if found is not None:
            raise IsodeployError(f"{found} is a symbolic link inside isodeploy's output; isodeploy never writes through "
                                 "links: remove the link (what it points to stays) and re-run")


def check_output_path(path: Path, input_folder: Path | None = None) -> Path:
    """The cheap checks on ``-o`` that must fail before any long work: returns the absolute path."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    if Path(path).is_symlink():
        raise IsodeployError(f"-o {path} is a symbolic link; give the real folder it points to, or another folder")
    if path.exists() and not path.is_dir():
        raise IsodeployError(f"-o {path} is a file; give a folder path")
    if input_folder is not None and Path(input_folder).is_dir() and path.exists() and path.samefile(input_folder):
        raise IsodeployError(f"-o {path} is the input folder; write the result to another folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise IsodeployError(f"-o {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise IsodeployError(f"cannot write to -o {path}: {existing} is not writable; choose a writable location")
    return path


def probe_output_folder(path: Path, adopt: Callable[[Path], set[str] | None] | None = None,
                        input_folder: Path | None = None, known_names: Iterable[str] = ("model.safetensors", "isodeploy.json")) -> Path:
    """All checks :func:`open_output_folder` makes, without creating or locking anything."""
    path = check_output_path(path, input_folder)
    if path.is_dir() and read_owned(path) is None:
        entries = [p for p in path.iterdir() if p.name not in (OWNER_FILE, LOCK_FILE) and not is_our_temp(p.name, known_names)]
        if entries and (adopt is None or adopt(path) is None):
            raise IsodeployError(_not_ours(path))
    return path


def _not_ours(path: Path) -> str:
    return (f"-o {path} holds files isodeploy did not write; isodeploy never replaces them: "
            "choose a new or empty folder")


@contextmanager
def open_output_folder(path: Path, adopt: Callable[[Path], set[str] | None] | None = None,
                       input_folder: Path | None = None, known_names: Iterable[str] = (),
                       wait_s: float | None = None) -> Iterator[OutputFolder]:
    """Check, create, lock and clean an output folder for one run.

    ``adopt(folder)`` names the entries of a folder written before the marker existed (None: not
    ours). A folder this call created is removed again when the run fails before writing anything.
    """
    path = check_output_path(path, input_folder)
    created = not path.exists()
    top = path  # the topmost folder this call creates: removed again on failure
    while not top.parent.exists():
        top = top.parent
    fd = _acquire_lock(path, lock_wait_s() if wait_s is None else wait_s)
    folder: OutputFolder | None = None
    try:
        owned = read_owned(path)
        if owned is None:
            entries = [p.name for p in path.iterdir() if p.name not in (OWNER_FILE, LOCK_FILE)
                       and not is_our_temp(p.name, known_names)]
            if not entries:
                owned = set()
            else:
                owned = adopt(path) if adopt else None
                if owned is None:
                    raise IsodeployError(_not_ours(path))
                owned = {n for n in owned if _safe_name(n) and (path / n).exists()}
        refuse_links(path, owned | {n for n in known_names if _safe_name(n)})
        _write_owned(path, owned)  # also rewrites an edited marker without its dropped entries
        folder = OutputFolder(path, owned, created)
        folder.clean(known_names)
        yield folder
    except BaseException:
        if created and path.is_dir() and {p.name for p in path.iterdir()} <= {OWNER_FILE, LOCK_FILE}:
            shutil.rmtree(path, ignore_errors=True)
            for parent in path.parents:  # the empty parents this call made
                if parent == top.parent:
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break
        raise
    finally:
        try:
            if path.is_dir():
                (path / LOCK_FILE).unlink(missing_ok=True)
        finally:
            os.close(fd)


@contextmanager
def folder_lock(path: Path, wait_s: float | None = None, names: Iterable[str] = ()) -> Iterator[Path]:
    """Only the per-folder lock (for run folders with their own file rules, e.g. ``finetune -o``), with
    the entries ``names`` it writes refused when linked; a folder this call created is removed again
    when it is still empty at the end."""
    path = check_output_path(path)
    created = not path.exists()
    fd = _acquire_lock(path, lock_wait_s() if wait_s is None else wait_s)
    try:
        refuse_links(path, names)
        yield path
    finally:
        try:
            (path / LOCK_FILE).unlink(missing_ok=True)
            if created and path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        finally:
            os.close(fd)
