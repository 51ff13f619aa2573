"""Provision a real ``tritonserver`` for the tests: the ``nvidia-pytriton`` wheel in its own cached venv.

The server's Python stub must run numpy < 2 (with numpy 2 responses come back empty) and needs onnxruntime
for the ONNX backend, neither of which may leak into the project's environment, hence a separate venv under
``$ISODEPLOY_TRITON_CACHE`` (default ``~/.cache/isodeploy-triton``). It is built once and reused; the
``complete.json`` marker is written last, so an interrupted install is redone rather than trusted.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from isodeploy.core.errors import IsodeployError
from isodeploy.serve.pytriton_layout import layout_backends, libpython_dir, server_binary, server_env

CACHE_ENV = "ISODEPLOY_TRITON_CACHE"
PACKAGES = ["nvidia-pytriton==0.7.0", "numpy<2", "onnxruntime"]
INSTALL_TIMEOUT_S = 900


class TritonUnavailable(Exception):
    """The server cannot be provisioned here; the message says why (tests skip with it)."""


@dataclass
class TritonInstall:
    venv: Path
    binary: Path
    backend_dir: Path
    env: dict
    provision_seconds: float  # 0 when the cached venv was reused


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "isodeploy-triton")


def _key() -> dict:
    return {"packages": PACKAGES, "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "base": sys.base_prefix}


def provision_venv(root: Path | None = None) -> tuple[Path, float]:
    """The cached venv (built if missing or incomplete) and the seconds spent building it."""
    root = (root or cache_root()) / f"py{sys.version_info.major}{sys.version_info.minor}"
    root.mkdir(parents=True, exist_ok=True)
    venv, marker = root / "venv", root / "complete.json"
    with open(root / ".lock", "w") as lock:  # two sessions at once: the second waits for the first
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.is_file() and json.loads(marker.read_text()) == _key() and server_binary(venv).is_file():
                return venv, 0.0
        except (ValueError, OSError, IsodeployError):  # a damaged marker or venv: rebuild
            pass
        began = time.perf_counter()
        marker.unlink(missing_ok=True)
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], "could not create a venv for the Triton server")
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES],
             f"pip could not install {' '.join(PACKAGES)}")
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(_key()))
        os.replace(tmp, marker)
        return venv, time.perf_counter() - began


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TritonUnavailable(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
        raise TritonUnavailable(f"{what}: {lines[-1] if lines else 'exit code ' + str(proc.returncode)}")


def provision(backend_dest: Path) -> TritonInstall:
    """Everything needed to start the server; raises TritonUnavailable with a reason to skip on."""
    if not sys.platform.startswith("linux"):
        raise TritonUnavailable(f"nvidia-pytriton ships tritonserver for Linux only, not {sys.platform}")
    lib_dir = libpython_dir()
    if lib_dir is None:
        raise TritonUnavailable(f"Triton's Python stub needs libpython{sys.version_info.major}.{sys.version_info.minor}"
                                f".so and this interpreter ({sys.executable}) has no shared library")
    venv, seconds = provision_venv()
    backends = layout_backends(venv, backend_dest)  # fresh per session: picks up edits to the backend model.py
    return TritonInstall(venv, server_binary(venv), backends, server_env(venv, lib_dir), seconds)
