"""The per-folder lock ``.isodeploy.lock`` (``fcntl.flock``): one run at a time into one folder.

A second run waits ``ISODEPLOY_LOCK_WAIT`` seconds (default 5) and then fails with one line naming
the holder's PID. The lock file is opened ``O_NOFOLLOW`` (:func:`isodeploy.core.safe_write.open_lock_file`),
so a planted link never makes isodeploy truncate a file elsewhere.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from isodeploy.core.errors import IsodeployError
from isodeploy.core.ownership import LOCK_FILE
from isodeploy.core.safe_write import cannot_write, open_lock_file


def acquire_lock(folder: Path, wait_s: float) -> int:
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
