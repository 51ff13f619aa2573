"""``triton-repo --check``: load a freshly written model in a real Triton and send it one request.

The static validator knows Triton's rules; only the server knows its backends, its GPU and its version.
This starts the server against the new repository, waits (bounded) for the model, compares the config the
server reports with the one written, and for an ONNX compares one batch with onnxruntime on the same file.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from isodeploy.core.errors import IsodeployError
from isodeploy.serve.triton_http import OffSpecReply
from isodeploy.serve.triton_server import TritonLoadError, TritonServer

_NUMPY = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_FP64": np.float64, "TYPE_INT8": np.int8,
          "TYPE_INT16": np.int16, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64, "TYPE_UINT8": np.uint8,
          "TYPE_BOOL": np.bool_}
VARIABLE_DIM = 32  # the size a request uses for a -1 (non-batch) dim


@dataclass
class TritonCheckReport:
    server: str
    server_version: str
    model: str
    ready: bool
    load_seconds: float
    request_shapes: dict[str, list[int]] = field(default_factory=dict)
    output_shapes: dict[str, list[int]] = field(default_factory=dict)
    max_abs_diff: float | None = None  # vs onnxruntime on the same ONNX; None for a plan (no reference here)
    tolerance: float = 1e-4
    config_mismatches: list[str] = field(default_factory=list)
    passed: bool = False
    log: str = ""


def config_mismatches(written: dict, served: dict) -> list[str]:
    """Fields of the written config (``asdict(TritonConfig)``) that the server reports differently."""
    out = []
    for key in ("name", "platform"):
        if served.get(key) != written[key]:
            out.append(f"{key}: wrote {written[key]!r}, server has {served.get(key)!r}")
    if int(served.get("max_batch_size", 0)) != written["max_batch_size"]:
        out.append(f"max_batch_size: wrote {written['max_batch_size']}, server has {served.get('max_batch_size')}")
    for key in ("input", "output"):
        mine = [(t["name"], t["data_type"], list(t["dims"]), t["reshape"]) for t in written[f"{key}s"]]
        theirs = [(t.get("name"), t.get("data_type"), [int(d) for d in t.get("dims", [])],
                   [int(d) for d in t["reshape"].get("shape", [])] if "reshape" in t else None)
                  for t in served.get(key, [])]
        if mine != theirs:
            out.append(f"{key}: wrote {mine}, server has {theirs}")
    dyn = served.get("dynamic_batching")
    if written["max_batch_size"] > 0 and written.get("dynamic_batching", True):
        prefs = [int(s) for s in (dyn or {}).get("preferred_batch_size", [])]
        delay = int((dyn or {}).get("max_queue_delay_microseconds", -1))
        if dyn is None or prefs != written["preferred_batch_sizes"] or delay != written["max_queue_delay_us"]:
            out.append(f"dynamic_batching: wrote {written['preferred_batch_sizes']} / {written['max_queue_delay_us']} us, "
                       f"server has {dyn}")
    elif dyn:
        out.append(f"dynamic_batching: wrote none, server has {dyn}")
    groups = [(g.get("kind"), int(g.get("count", 1))) for g in served.get("instance_group", [])]
    if groups != [(written["instance_kind"], written["instance_count"])]:
        out.append(f"instance_group: wrote {written['instance_kind']} x{written['instance_count']}, server has {groups}")
    return out


def request_inputs(written: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """One request's tensors: batch 2 where batching allows (1 when max_batch_size is 1), random floats, zero ints."""
    rng = np.random.default_rng(seed)
    mbs = written["max_batch_size"]
    batch = [min(2, mbs)] if mbs > 0 else []
    feeds = {}
    for t in written["inputs"]:
        dtype = _NUMPY.get(t["data_type"])
        if dtype is None:
            raise IsodeployError(f"--check cannot form a request for input '{t['name']}' of type {t['data_type']}")
        dims = t["reshape"] if t["reshape"] is not None else t["dims"]
        shape = batch + [VARIABLE_DIM if d == -1 else d for d in dims]
        if np.issubdtype(dtype, np.floating):
            feeds[t["name"]] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[t["name"]] = np.zeros(shape, dtype)
    return feeds


def onnx_reference(model_file: Path, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds)


def _max_abs_diff(got: np.ndarray, ref: np.ndarray) -> float:
    if got.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0


def check_served(repo: Path, written: dict, server: Path, *, backend_dir: Path | None = None, env: dict | None = None,
                 reference_onnx: Path | None = None, timeout: float = 120.0, tolerance: float = 1e-4,
                 log_dir: Path | None = None) -> TritonCheckReport:
    """Start ``server`` on ``repo``, load ``written['name']``, compare config and one request; always stops it.

    Without ``log_dir`` the server's log goes to a temporary folder that is removed whatever happens
    (a failure's message quotes the log's last error line instead of a path that no longer exists).
    """
    own_dir = log_dir is None
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix=f"isodeploy-triton-check-{os.getpid()}-"))
    try:
        return _check_served(repo, written, server, backend_dir, env, reference_onnx, timeout, tolerance, log_dir, own_dir)
    except IsodeployError as exc:
        if own_dir and exc.args:
            exc.args = (_without_log_path(str(exc.args[0]), log_dir),)
        raise
    finally:
        if own_dir:
            shutil.rmtree(log_dir, ignore_errors=True)


def _without_log_path(message: str, log_dir: Path) -> str:
    """``message`` without mentions of a log under ``log_dir`` (removed with it)."""
    where = re.escape(str(log_dir))
    message = re.sub(rf"\s*\((?:server )?log: {where}[^)]*\)", "", message)
    return re.sub(rf"see {where}\S*", "no error line in its log", message)


def _check_served(repo: Path, written: dict, server: Path, backend_dir: Path | None, env: dict | None,
                  reference_onnx: Path | None, timeout: float, tolerance: float, log_dir: Path,
                  own_dir: bool) -> TritonCheckReport:
    name = written["name"]
    served_repo = Path(repo).resolve()
    if any(ch.isspace() for ch in str(served_repo)):  # Triton's Python backend stub breaks on such paths
        served_repo = log_dir / "repo"
        served_repo.symlink_to(Path(repo).resolve(), target_is_directory=True)
    proc = TritonServer(server, served_repo, log_dir / "tritonserver.log", backend_dir=backend_dir, env=env)
    report = TritonCheckReport(str(server), "?", name, False, 0.0, tolerance=tolerance, log=str(proc.log_path))
    try:
        proc.start(timeout=min(timeout, 60.0))
        client = proc.client(timeout=timeout)
        report.server_version = client.server_version()
        began = time.perf_counter()
        proc.load(name, timeout=timeout)
        report.load_seconds = round(time.perf_counter() - began, 3)
        report.ready = client.ready(name)
        if not report.ready:
            raise TritonLoadError(f"Triton loaded '{name}' but does not report it READY")
        served = client.config(name)
        try:
            report.config_mismatches = config_mismatches(written, served)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # the served config's fields, not ours
            raise OffSpecReply(f"Triton's config of '{name}' is off-spec ({type(exc).__name__}: {str(exc)[:80]})") from None
        feeds = request_inputs(written)
        names = [t["name"] for t in written["outputs"]]
        try:
            got = client.infer(name, feeds, names)
        except OSError as exc:
            raise TritonLoadError(f"'{name}' is READY but its first request failed: {exc}") from exc
        missing = [n for n in names if n not in got]
        if missing:
            raise OffSpecReply(f"Triton's reply to the request on '{name}' has no output '{missing[0]}'")
        report.request_shapes = {k: list(v.shape) for k, v in feeds.items()}
        report.output_shapes = {k: list(v.shape) for k, v in got.items()}
        finite = all(np.isfinite(v.astype(np.float64)).all() for v in got.values())
        if reference_onnx is not None:
            ref = onnx_reference(reference_onnx, feeds, names)
            report.max_abs_diff = max(_max_abs_diff(got[n], r) for n, r in zip(names, ref))
        report.passed = (finite and not report.config_mismatches
                         and (report.max_abs_diff is None or report.max_abs_diff <= tolerance))
    finally:
        proc.stop()
        if own_dir:  # the caller removes the folder
            report.log = ""
    return report


def check_written_repo(report, server: Path, *, backend_dir: Path | None = None, env: dict | None = None,
                       timeout: float = 120.0, tolerance: float = 1e-4) -> TritonCheckReport:
    """``--check`` for a :class:`~isodeploy.serve.triton_repo.TritonRepoReport`; raises one line (exit 1) on failure."""
    model_dir = Path(report.model_dir)
    reference = model_dir / "1" / "model.onnx" if report.platform == "onnxruntime_onnx" else None
    result = check_served(Path(report.repo), report.config, server, backend_dir=backend_dir, env=env,
                          reference_onnx=reference, timeout=timeout, tolerance=tolerance)
    report.check = asdict(result)
    if result.config_mismatches:
        raise TritonLoadError(f"Triton loaded '{result.model}' with another config than written: "
                              f"{result.config_mismatches[0]}")
    if not result.passed:
        diff = "n/a" if result.max_abs_diff is None else f"{result.max_abs_diff:.3g}"
        raise TritonLoadError(f"Triton serves '{result.model}' but its answer is wrong: max abs diff vs onnxruntime "
                              f"{diff} (tolerance {tolerance:g}), or non-finite outputs")
    return result
