"""The one owner of how isodeploy writes files: atomic writes, temporary names and their clean-up,
and output-folder ownership with a per-folder lock.

* **Atomic**: every file is written to a temporary in the same folder and renamed into place, so a
  reader (or a killed run) never sees half a file.
* **Temporaries** are named ``.isodeploy-tmp-<pid>-<rand>-<name>``; one whose PID is no longer alive
  was left by a killed run and is removed by the next run.
* **Ownership**: an output folder holds ``.isodeploy-owned.json``, the list of what isodeploy wrote
  there. isodeploy replaces only those entries and refuses a folder of someone else's files.
* **Lock**: ``.isodeploy.lock`` (``fcntl.flock``) serialises runs into one folder; a second run waits
  ``ISODEPLOY_LOCK_WAIT`` seconds (default 5) and then fails with one line naming the holder's PID.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from isodeploy.core.errors import IsodeployError

TEMP_PREFIX = ".isodeploy-tmp-"
OWNER_FILE = ".isodeploy-owned.json"
LOCK_FILE = ".isodeploy.lock"
SYSTEM_TEMP_PREFIX = "isodeploy-bench-"  # bench work folders in the system temp dir
_TEMP_RE = re.compile(r"^\.isodeploy-tmp-(\d+)-")
_SYSTEM_TEMP_RE = re.compile(r"^isodeploy-bench-(\d+)-")
LEGACY_TEMP_AGE_S = 12 * 3600  # system temps without a PID in their name: stale after this long


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


# -- temporaries --------------------------------------------------------------------------------
def temp_path(target: Path) -> Path:
    """A temporary name next to ``target`` that the clean-up recognises (and ties to this PID)."""
    target = Path(target)
    return target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{target.name}")


def make_temp_dir(parent: Path, label: str) -> Path:
    """A private work folder in ``parent`` with a recognisable, PID-tagged name."""
    path = temp_path(Path(parent) / label)
    path.mkdir(mode=0o755, parents=True)
    return path


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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale_temps(folder: Path, known_names: Iterable[str] = ()) -> list[str]:
    """Remove temporaries of dead runs from ``folder``; returns the names removed.

    ``.isodeploy-tmp-<pid>-*`` goes when its PID is dead. With the folder's lock held, the older
    patterns of files we write (``.<known name>.*`` with ``known_names`` the folder's own artifacts,
    ``.isodeploy-build-*``) can only be leftovers too. Anything else (a user's dotfiles) stays.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefixes = tuple(f".{name}." for name in known_names if name) + (".isodeploy-build-",)
    removed = []
    for entry in folder.iterdir():
        name = entry.name
        match = _TEMP_RE.match(name)
        if match:
            stale = not pid_alive(int(match.group(1)))
        else:
            stale = name.startswith(prefixes) and name not in (OWNER_FILE, LOCK_FILE)
        if stale:
            _remove(entry)
            removed.append(name)
    return removed


def clean_parent_leftovers(folder: Path) -> list[str]:
    """Remove the staging/backup folders an older ``prune`` left next to ``folder``
    (``.DIR.old-PID`` of a dead PID, ``.DIR.xxxxxxxx`` holding nothing but isodeploy files)."""
    folder = Path(folder)
    parent = folder.parent
    if not parent.is_dir():
        return []
    removed = []
    ours = {"model.safetensors", "isodeploy.json"}
    for entry in parent.glob(f".{glob_escape(folder.name)}.*"):
        if not entry.is_dir() or entry.is_symlink():
            continue
        rest = entry.name[len(folder.name) + 2:]
        old = re.fullmatch(r"old-(\d+)", rest)
        if old:
            stale = not pid_alive(int(old.group(1)))
        else:
            names = {p.name for p in entry.iterdir()}
            stale = re.fullmatch(r"[a-z0-9_]{8}", rest) is not None and names <= ours
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def clean_system_temps() -> list[str]:
    """Remove ``isodeploy-bench-*`` work folders of dead runs from the system temp dir."""
    root = Path(tempfile.gettempdir())
    removed = []
    try:
        entries = list(root.glob(f"{SYSTEM_TEMP_PREFIX}*"))
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


# -- atomic writes ------------------------------------------------------------------------------
def _cannot_write(path: Path, exc: OSError) -> IsodeployError:
    why = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why += "; choose a writable location"
    elif exc.errno == errno.ENOSPC:
        why += "; free some space or choose another location"
    return IsodeployError(f"cannot write {path}: {why}")


@contextmanager
def atomic_path(target: Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is renamed onto ``target``.

    The body writes the temporary however it likes (``save_file``, ``onnx.save`` …); on any failure
    the temporary is removed and ``target`` is untouched.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    if target.is_symlink() or target.is_dir():
        raise IsodeployError(f"{target} is a {'symbolic link' if target.is_symlink() else 'folder'}; give a file path")
    tmp = temp_path(target)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _cannot_write(folder, exc) from None
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
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
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
        """Leftovers of killed runs: in the folder, next to it, and inside the sub-folders isodeploy owns
        wholly (``triton/``: staging ``.NAME.tmp-*`` and backup ``.NAME.old-*`` folders)."""
        removed = clean_stale_temps(self.path, set(known_names) | self.owned) + clean_parent_leftovers(self.path)
        for name in sorted(self.owned):
            sub = self.path / name
            if sub.is_dir() and not sub.is_symlink():
                for entry in sub.iterdir():
                    if entry.name.startswith(".") and re.search(r"\.(tmp|old)-", entry.name):
                        _remove(entry)
                        removed.append(f"{name}/{entry.name}")
                removed += [f"{name}/{n}" for n in clean_stale_temps(sub)]
        return removed


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
        entries = [p for p in path.iterdir() if p.name not in (OWNER_FILE, LOCK_FILE) and not _looks_like_our_temp(p.name, known_names)]
        if entries and (adopt is None or adopt(path) is None):
            raise IsodeployError(_not_ours(path))
    return path


def _looks_like_our_temp(name: str, known_names: Iterable[str]) -> bool:
    """A temporary of ours (this or an older isodeploy) that a killed run left: it does not make a
    folder someone else's."""
    return name.startswith(TEMP_PREFIX) or name.startswith(tuple(f".{k}." for k in known_names if k) + (".isodeploy-build-",))


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
                       and not _looks_like_our_temp(p.name, known_names)]
            if not entries:
                owned = set()
            else:
                owned = adopt(path) if adopt else None
                if owned is None:
                    raise IsodeployError(_not_ours(path))
                owned = {n for n in owned if _safe_name(n) and (path / n).exists()}
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
def folder_lock(path: Path, wait_s: float | None = None) -> Iterator[Path]:
    """Only the per-folder lock (for run folders with their own file rules, e.g. ``finetune -o``);
    a folder this call created is removed again when it is still empty at the end."""
    path = check_output_path(path)
    created = not path.exists()
    fd = _acquire_lock(path, lock_wait_s() if wait_s is None else wait_s)
    try:
        yield path
    finally:
        try:
            (path / LOCK_FILE).unlink(missing_ok=True)
            if created and path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        finally:
            os.close(fd)
