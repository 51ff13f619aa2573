"""An output folder for one run: checked, created, locked, cleaned of a killed run's leftovers, and
written only where isodeploy owns the entry.

* **Links**: a symbolic link at or inside an entry isodeploy owns is refused, never followed.
* **Ownership**: see :mod:`isodeploy.core.ownership`; **lock**: :mod:`isodeploy.core.locks`;
  **atomic writes**: :mod:`isodeploy.core.safe_write`; **clean-up** by own names only:
  :mod:`isodeploy.core.cleanup`.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from isodeploy.core.cleanup import clean_stale_temps, is_our_temp
from isodeploy.core.errors import IsodeployError
from isodeploy.core.locks import acquire_lock, lock_wait_s
from isodeploy.core.ownership import LOCK_FILE, OWNER_FILE, read_owned, safe_name, write_owned
from isodeploy.core.safe_write import writable_ancestor


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
            if not safe_name(top):
                raise ValueError(f"not a top-level entry name: {name!r}")
            if top in self.owned:
                continue
            entry = self.path / top
            if entry.exists() or entry.is_symlink():
                raise IsodeployError(f"{entry} exists and was not written by isodeploy; move it away or choose another -o")
            new.add(top)
        if new:
            self.owned |= new
            write_owned(self.path, self.owned)

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
    existing, why = writable_ancestor(path)
    if why == "file":
        raise IsodeployError(f"-o {path}: {existing} is a file, not a folder")
    if why == "read-only":
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
    fd = acquire_lock(path, lock_wait_s() if wait_s is None else wait_s)
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
                owned = {n for n in owned if safe_name(n) and (path / n).exists()}
        refuse_links(path, owned | {n for n in known_names if safe_name(n)})
        write_owned(path, owned)  # also rewrites an edited marker without its dropped entries
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
    fd = acquire_lock(path, lock_wait_s() if wait_s is None else wait_s)
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
