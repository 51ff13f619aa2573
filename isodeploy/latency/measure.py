"""Timing a model variant against the dense model on the target runtime: export, open, interleave.

Every variant is timed in the bench's adaptive schedule *paired with the dense model* (mirrored
rounds D V V D, ratio of per-round medians, Hodges–Lehmann estimate with a Wilcoxon interval), so a
table step is a ratio that a drifting machine moves little. Two runtimes:

* ``ort`` — onnxruntime on CPU (or CUDA), FP32, the bench's threads and batch;
* ``trt`` — a TensorRT FP16 engine built per variant (opt = max = the batch), on the GPU.
"""

from __future__ import annotations

import copy
import itertools
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from isodeploy.benchmarking.protocol import Protocol
from isodeploy.benchmarking.schedule import run_adaptive
from isodeploy.benchmarking.stats import Interval, location_interval
from isodeploy.core.errors import IsodeployError

RUNTIMES = ("ort", "trt")
#: A table step: short and tight (the solver compares steps of ~1-5 %); the final check uses the bench's protocol.
STEP_PROTOCOL = Protocol(name="adaptive", budget_s=4.0, target=0.015, warmup_s=0.3, min_rounds=4, max_rounds=40, min_block_s=0.05)


@dataclass(eq=False)
class _Timed:
    """The least the adaptive schedule needs of an entry."""

    label: str
    timed: Any
    runtime: str = "ort"
    rounds: list[list[float]] = field(default_factory=list)
    round_ids: list[int] = field(default_factory=list)

    @property
    def ref(self) -> SimpleNamespace:
        return SimpleNamespace(label=self.label)


@dataclass
class Paired:
    """One variant ÷ dense measurement (and the dense latency of the same rounds)."""

    ratio: Interval
    variant_ms: Interval
    dense_ms: Interval
    rounds: int
    stop: str


class Measurer:
    """Times variants of one dense model on one runtime. ``close()`` removes its work folder."""

    def __init__(self, dense: Any, example: Any, *, runtime: str = "ort", device: str = "cpu", threads: int | None = None,
                 work_dir: Path | None = None, step_protocol: Protocol = STEP_PROTOCOL) -> None:
        from isodeploy.benchmarking.envinfo import cpu_model, usable_cores

        if runtime not in RUNTIMES:
            raise IsodeployError(f"latency runtime '{runtime}' is not one of {', '.join(RUNTIMES)}")
        if runtime == "trt":
            from isodeploy.runtime.trt.env import require_cuda, require_tensorrt

            require_tensorrt()
            require_cuda()
            device = "cuda"
        self.runtime, self.device = runtime, device
        self.threads = threads or usable_cores()
        self.example = example
        self.batch = int(example.shape[0])
        self.step_protocol = step_protocol
        self._own_dir = work_dir is None
        import os

        self.work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"isodeploy-bench-{os.getpid()}-latency-"))
        try:
            self.work.mkdir(parents=True, exist_ok=True)
            self._count = itertools.count()
            self.precision = "fp16" if runtime == "trt" else "fp32"
            self.processor = self._gpu_name() if device == "cuda" else cpu_model()
            self.cores = usable_cores()
            self.runtime_version = self._runtime_version()
            self._dense_step_s: float | None = None
            self.dense = self.open(dense, "dense")
        except BaseException:  # a dense model that does not export or open leaves no work folder behind
            self.close()
            raise

    def _runtime_version(self) -> str:
        if self.runtime == "trt":
            import tensorrt

            return str(tensorrt.__version__)
        import onnxruntime

        return str(onnxruntime.__version__)

    @staticmethod
    def _gpu_name() -> str:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda"

    def open(self, model: Any, label: str) -> _Timed:
        """Export ``model`` at the batch of the example and ready one timed step on the runtime."""
        from isodeploy.export.onnx import export_for_timing

        folder = self.work / f"v{next(self._count)}"
        folder.mkdir()
        onnx_path = folder / "model.onnx"
        export_for_timing(copy.deepcopy(model).eval(), self.example, onnx_path)
        if self.runtime == "trt":
            from isodeploy.export.trt.build import build_engine, convert_to_fp16
            from isodeploy.runtime.trt.runner import TrtRunner

            fp16 = convert_to_fp16(onnx_path, folder / "model.fp16.onnx")
            plan = folder / "model.plan"
            build_engine(fp16, plan, precision="fp16", min_batch=self.batch, opt_batch=self.batch, max_batch=self.batch,
                         timing_cache=self.work / "timing-cache")
            runner = TrtRunner(plan)
        else:
            from isodeploy.runtime.ort import OrtRunner

            runner = OrtRunner(onnx_path, threads=self.threads, device=self.device)
        timed = runner.timed_step(self.batch)
        shutil.rmtree(folder, ignore_errors=True)  # the session holds the model: a table of 50 variants needs no 50 files
        return _Timed(label=label, timed=timed, runtime=self.runtime)

    def quick_dense_ms(self) -> float:
        """A few steps of the dense model: enough to refuse a time budget above it before the table is built."""
        from isodeploy.benchmarking.latency import time_steps

        return sorted(time_steps(self.dense.timed, warmup=1, iters=3))[1]  # CUDA events on the GPU: queued work counts

    def pair(self, variant: _Timed, protocol: Protocol | None = None, reporter: Any = None) -> Paired:
        """``variant`` ÷ dense by the adaptive schedule (the dense model is a headline side, not rationed).

        A table step's budget stretches so that ``min_rounds`` mirrored rounds fit even when one dense
        step is long (DeiT-S at batch 8 on 2 cores: 0.45 s a step), instead of stopping at "too few rounds"."""
        if protocol is None:
            from dataclasses import replace

            if self._dense_step_s is None:
                self._dense_step_s = self.quick_dense_ms() / 1e3
            need = self.step_protocol.min_rounds * 4 * self._dense_step_s + 1.0
            protocol = replace(self.step_protocol, budget_s=max(self.step_protocol.budget_s, need))
        for e in (variant, self.dense):
            e.rounds.clear()
            e.round_ids.clear()
        outcome = run_adaptive([variant, self.dense], protocol, pairs=[(variant, self.dense)], reporter=reporter)
        from isodeploy.benchmarking.report import percentile
        from isodeploy.benchmarking.schedule import headline_intervals

        ratio = headline_intervals([(variant, self.dense)], [])[0]
        medians = lambda e: [percentile(sorted(r), 50) for r in e.rounds if r]  # noqa: E731
        return Paired(ratio, location_interval(medians(variant)), location_interval(medians(self.dense)), outcome.rounds, outcome.reason)

    def ratio_of(self, model: Any, label: str = "variant") -> Paired:
        variant = self.open(model, label)
        try:
            return self.pair(variant)
        finally:
            self.release(variant)

    @staticmethod
    def release(entry: _Timed) -> None:
        entry.timed = None

    def close(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.work, ignore_errors=True)


def measurer_factory(runtime: str, device: str, threads: int | None, work_dir: Path | None = None,
                     step_budget_s: float | None = None) -> Callable[[Any, Any], Measurer]:
    """What the search calls once it has the dense model and its example batch."""
    from dataclasses import replace

    protocol = STEP_PROTOCOL if step_budget_s is None else replace(STEP_PROTOCOL, budget_s=float(step_budget_s))
    return lambda dense, example: Measurer(dense, example, runtime=runtime, device=device, threads=threads, work_dir=work_dir,
                                           step_protocol=protocol)
