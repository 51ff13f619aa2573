"""Turn an installed ``nvidia-pytriton`` wheel into a runnable ``tritonserver`` for ONNX repositories.

The wheel ships the Triton binary, the Python backend and one Python stub per interpreter version, but no
onnxruntime backend. Three things make an ``isodeploy triton-repo`` repository serve with it:

* a backend folder with the Python backend and the stub of our Python version, *copied* (Triton refuses a
  backend file that resolves outside its folder, so symlinks do not work);
* ``BACKEND_DIR/onnxruntime/model.py`` = :mod:`isodeploy.serve.triton_ort_backend`, a Python-based backend;
* an environment where the stub finds ``libpython3.X.so``, the wheel's bundled libraries, and a Python whose
  packages include numpy < 2 (with numpy 2 the stub returns empty responses) and onnxruntime.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from isodeploy.core.errors import IsodeployError

_HERE = Path(__file__).resolve().parent


def pytriton_root(venv: Path) -> Path:
    """The ``pytriton`` package folder inside a venv (the wheel's server lives under it)."""
    found = sorted(Path(venv).glob("lib/python3*/site-packages/pytriton"))
    if not found:
        raise IsodeployError(f"'{venv}' has no nvidia-pytriton installed")
    return found[-1]


def server_binary(venv: Path) -> Path:
    return pytriton_root(venv) / "tritonserver" / "bin" / "tritonserver"


def layout_backends(venv: Path, dest: Path, python_version: str | None = None) -> Path:
    """Write ``dest/python`` (backend + stub) and ``dest/onnxruntime/model.py``; returns ``dest``."""
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    dist = pytriton_root(venv) / "tritonserver"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise IsodeployError(f"nvidia-pytriton has no Python backend stub for Python {version}")
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(dist / "backends" / "python", dest / "python", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(stub, dest / "python" / "triton_python_backend_stub")
    (dest / "onnxruntime").mkdir(parents=True)
    shutil.copyfile(_HERE / "triton_ort_backend.py", dest / "onnxruntime" / "model.py")
    return dest


def libpython_dir() -> Path | None:
    """The folder of this interpreter's shared ``libpython3.X.so`` (the stub links against it), or None."""
    soname = sysconfig.get_config_var("INSTSONAME") or f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0"
    candidates = [sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LIBPL"),
                  "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):  # a static interpreter: look for the same version's .so
        soname = f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0"
    for folder in candidates:
        if folder and (Path(folder) / soname).exists():
            return Path(folder)
    return None


def server_env(venv: Path, lib_dir: Path) -> dict[str, str]:
    """Environment for the server: the venv's python first on PATH, libpython and the wheel's libraries loadable."""
    env = dict(os.environ)
    venv = Path(venv).resolve()
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # the stub must see the server venv only
        env.pop(key, None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    libs = [str(lib_dir), str(pytriton_root(venv).parent / "nvidia_pytriton.libs")]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    return env
