"""The one way isodeploy puts a file in place: never through a link, never onto something that is not a
regular file.

* A **target** that exists must be a regular file (``os.lstat``, ``S_ISREG``). A symbolic link, a
  folder, a FIFO, a socket or a device node is refused in one line, because renaming over it would
  replace it (as root, ``--json /dev/null`` would turn ``/dev/null`` into a regular file).
* A **temporary** is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` next to the target, named
  ``.isodeploy-tmp-<pid>-<rand>-<name>``, so it is always a fresh file of ours and a killed run's
  leftover can be recognised by its dead PID.
* The **lock** file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and must be a regular file with one
  link, so a planted link or hard link never makes us truncate another file.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterator

from isodeploy.core.errors import IsodeployError

TEMP_PREFIX = ".isodeploy-tmp-"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def kind_of(mode: int) -> str:
    """A reader's name for what an ``lstat`` mode is."""
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    return "special file"


def writable_ancestor(path: Path) -> tuple[Path, str | None]:
    """The nearest existing folder at or above ``path`` a new file or folder would go into, and why it
    cannot take one (``"file"``: it is a file; ``"read-only"``: not writable), or None when it can."""
    existing = Path(os.path.abspath(Path(path).expanduser()))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return existing, "file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return existing, "read-only"
    return existing, None


def check_target(path: Path, label: str | None = None) -> None:
    """Refuse an existing ``path`` that is not a regular file; a missing one is fine."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise cannot_write(Path(path), exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise IsodeployError(f"{label or path} is a {kind_of(st.st_mode)}, not a regular file; isodeploy replaces only "
                             "regular files: give a file path")


def cannot_write(path: Path, exc: OSError) -> IsodeployError:
    why = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why += "; choose a writable location"
    elif exc.errno == errno.ENOSPC:
        why += "; free some space or choose another location"
    elif exc.errno == errno.ELOOP:
        why = "a symbolic link is in the way; isodeploy never writes through links"
    return IsodeployError(f"cannot write {path}: {why}")


def temp_path(target: Path) -> Path:
    """A temporary name next to ``target`` that the clean-up recognises (and ties to this PID)."""
    target = Path(target)
    return target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{target.name}")


def new_temp_file(target: Path) -> Path:
    """Create an empty temporary file of ours next to ``target`` (never an existing name, never a link)."""
    while True:
        tmp = temp_path(target)
        try:
            os.close(os.open(tmp, _NEW_FILE, 0o600))
            return tmp
        except FileExistsError:
            continue


def make_temp_dir(parent: Path, label: str) -> Path:
    """A private work folder in ``parent`` with a recognisable, PID-tagged name (``mkdir`` never follows links)."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    while True:
        path = temp_path(Path(parent) / label)
        try:
            path.mkdir(mode=0o755)
            return path
        except FileExistsError:
            continue


def replace_into(tmp: Path, target: Path, mode: int | None = 0o644) -> None:
    """Rename our temporary ``tmp`` onto ``target``, checked again just before: only a regular file is replaced."""
    check_target(target)
    if mode is not None and stat.S_ISREG(os.lstat(tmp).st_mode):
        os.chmod(tmp, mode)
    os.replace(tmp, target)


def remove_quietly(path: Path) -> None:
    """Remove a temporary of ours (a file, a link, or a folder tree: ``rmtree`` never follows links)."""
    import shutil

    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


@contextmanager
def atomic_path(target: Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a fresh temporary file next to ``target``; on success it is renamed onto ``target``.

    The body writes the temporary however it likes (``save_file``, ``onnx.save`` …); on any failure
    the temporary is removed and ``target`` is untouched. A target that is not a regular file is
    refused before anything is written.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(target, exc) from None
    check_target(target)
    try:
        tmp = new_temp_file(target)
    except OSError as exc:
        raise cannot_write(target, exc) from None
    try:
        yield tmp
        replace_into(tmp, target, mode)
    except OSError as exc:
        raise cannot_write(target, exc) from None
    finally:
        if os.path.lexists(tmp):
            remove_quietly(tmp)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def open_lock_file(path: Path) -> int:
    """Open (creating) the lock file ``path`` for writing; refuse a link, a hard link or a non-regular file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            st = os.lstat(path)
            raise IsodeployError(f"{path} is a {kind_of(st.st_mode)}, not isodeploy's lock file; remove it and re-run "
                                 "(isodeploy never writes through links)") from None
        raise cannot_write(Path(path).parent, exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = kind_of(st.st_mode) if not stat.S_ISREG(st.st_mode) else "file with other hard links"
        raise IsodeployError(f"{path} is a {what}, not isodeploy's lock file; remove it and re-run")
    return fd


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON through a temp file and rename, so a reader never sees half a file."""
    if is_dataclass(payload) and not isinstance(payload, type):
        payload = asdict(payload)
    text = json.dumps(payload, indent=2, default=str) + "\n"
    write_text_atomic(Path(path), text)
