"""The environment a benchmark ran in, recorded beside every figure.

Latency is meaningless without the machine: CPU model and cores, GPU and driver, and the versions of
every library on the inference path. Versions come from package metadata so that recording them
does not import (and time) heavy libraries.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata

LIBRARIES = ("isodeploy", "torch", "timm", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "numpy")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (cgroup/affinity aware where the OS says so)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def gpu_info() -> dict[str, str]:
    """GPU name, compute capability, driver and CUDA versions, when torch sees a GPU."""
    import torch

    if not torch.cuda.is_available():
        return {}
    idx = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(idx)
    info = {
        "gpu": torch.cuda.get_device_name(idx),
        "compute_capability": f"{major}.{minor}",
        "gpu_memory_gb": f"{torch.cuda.get_device_properties(idx).total_memory / 2**30:.1f}",
        "cuda_runtime": str(torch.version.cuda),
    }
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", f"--id={idx}", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=True,
            )
            info["driver"] = out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def collect_env(device: str = "cpu") -> dict[str, object]:
    """Everything needed to tell whether two benchmark runs are comparable."""
    env: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "logical_cpus": os.cpu_count() or 0,
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }
    if device == "cuda":
        env.update(gpu_info())
    return env


def describe_machine(env: dict[str, object]) -> str:
    """One line such as ``AMD EPYC, 2 cores`` or ``... + NVIDIA H100 (driver 550.54)``."""
    text = f"{env.get('cpu', 'unknown CPU')}, {env.get('cores', '?')} cores"
    if env.get("gpu"):
        text += f" + {env['gpu']}"
        if env.get("driver"):
            text += f" (driver {env['driver']})"
    return text
