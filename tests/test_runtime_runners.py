"""The runtime layer with a real onnxruntime: CUDA is never a silent CPU run, FP16 ONNX is labelled fp16,
every runner is measured for memory by one method, and TensorRT start-up failures are exit 4."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from isodeploy.benchmarking import memory
from isodeploy.benchmarking.memory_probe import CPU_METHOD
from isodeploy.core.errors import IsodeployError
from isodeploy.runtime.base import EXIT_NO_CUDA
from isodeploy.runtime.onnx_info import compute_precision
from isodeploy.runtime.open import open_runner
from isodeploy.runtime.ort import OrtRunner
from isodeploy.runtime.reference import ReferenceRunner
from isodeploy.runtime.torch_runner import TorchRunner
from isodeploy.loading import load_model

TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2}


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rt") / "small.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Small().eval(), (torch.randn(2, 3, 16, 16),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def test_cpu_runner_runs_and_times(small_onnx: Path) -> None:
    runner = OrtRunner(small_onnx, threads=1)
    assert runner.providers == ["CPUExecutionProvider"] and runner.precision == "fp32" and runner.device == "cpu"
    (out,) = runner.run({"input": np.random.randn(3, 3, 16, 16).astype(np.float32)})
    assert out.shape == (3, 10)
    timed = runner.timed_step(5)
    assert timed.input_shape == [5, 3, 16, 16] and timed.cuda_stream is None and timed.timing.startswith("CPU")
    assert timed.step()[0].shape == (5, 10)


def test_cuda_without_a_cuda_provider_is_refused(small_onnx: Path) -> None:
    with pytest.raises(IsodeployError, match="no CUDAExecutionProvider") as err:
        OrtRunner(small_onnx, device="cuda")
    assert err.value.exit_code == EXIT_NO_CUDA


def test_a_session_that_fell_back_to_cpu_is_not_timed_as_cuda(small_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime claims a CUDA provider (as onnxruntime-gpu does without a usable driver), the real session
    then runs on the CPU: the runner must look at the session's actual providers and refuse."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        pytest.skip("a working CUDA provider: the fallback cannot happen here")
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    with pytest.raises(IsodeployError, match="refusing to time a CPU run as cuda") as err:
        OrtRunner(small_onnx, device="cuda")
    assert err.value.exit_code == EXIT_NO_CUDA


def test_verify_and_bench_refuse_forced_cuda_in_one_line(small_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from isodeploy.cli import main

    for args in (["verify", str(small_onnx), "--reference", str(small_onnx), "--device", "cuda"],
                 ["bench", str(small_onnx), "--runtime", "ort", "--device", "cuda", "--iters", "2"]):
        assert main(args) == EXIT_NO_CUDA
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and err.count("\n") == 0, err


def test_fp16_onnx_with_fp32_io_is_labelled_fp16(small_onnx: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxconverter_common")
    from isodeploy.benchmarking.suite import BenchSettings, run_bench
    from isodeploy.export.fp16 import convert_fp16

    half = tmp_path / "small.fp16.onnx"
    convert_fp16(small_onnx, half)
    model = onnx.load(str(half))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # FP32 I/O, FP16 inside
    del model.metadata_props[:]  # no help from isodeploy's metadata: the graph alone must say fp16
    bare = tmp_path / "bare.fp16.onnx"
    onnx.save(model, str(bare))
    assert compute_precision(onnx.load(str(bare))) == "fp16"
    assert OrtRunner(bare).precision == "fp16" and ReferenceRunner(bare).precision == "fp16"
    assert OrtRunner(small_onnx).precision == "fp32"
    (r,) = run_bench([str(bare)], BenchSettings(runtimes=("ort",), batch=2, warmup=1, iters=2, threads=1, memory=False)).results
    assert r.precision == "fp16"


def test_every_runner_is_measured_by_the_same_method(small_onnx: Path) -> None:
    """torch, onnxruntime and the reference evaluator: each in its own fresh process, one method, one batch."""
    loaded = load_model("deit_tiny_patch16_224", weights="random", **TINY_VIT)
    vit_onnx = small_onnx.parent / "vit.onnx"
    from isodeploy.export.onnx import export_onnx

    export_onnx(loaded, vit_onnx)
    specs = [memory.probe_spec("torch", device="cpu", batch=4, threads=1, loaded=loaded),
             memory.probe_spec("ort", device="cpu", batch=4, threads=1, onnx=vit_onnx),
             memory.probe_spec("reference", device="cpu", batch=4, threads=1, onnx=vit_onnx)]
    figures = []
    for spec in specs:
        fig, why = memory.measure_peak(spec, repeats=2)
        assert why is None, why
        figures.append(fig)
    assert {f.method_id for f in figures} == {CPU_METHOD}
    assert len({f.method.split(" (")[0] for f in figures}) == 1  # word for word the same method
    pids = [pid for f in figures for pid in f.pids]
    assert len(set(pids)) == 6 and os.getpid() not in pids  # a fresh process per reading
    weights_mb = sum(p.numel() for p in loaded.model.parameters()) * 4 / 2**20
    for f in figures:
        assert len(f.samples_mb) == 2 and f.delta_mb > 0.5 * weights_mb


def test_torch_runner_fp16_needs_cuda_and_open_runner_dispatches(small_onnx: Path) -> None:
    with pytest.raises(IsodeployError, match="needs --device cuda"):
        TorchRunner(Small(), "cpu", precision="fp16")
    runner = TorchRunner(Small(), "cpu", input_size=(3, 16, 16))
    assert runner.timed_step(2).input_shape == [2, 3, 16, 16]
    assert isinstance(open_runner(small_onnx), OrtRunner)
    assert isinstance(open_runner(small_onnx, runtime="reference"), ReferenceRunner)


# ----------------------------------------------------------------------------- TensorRT start-up (no TensorRT here)


def _fake_trt(builder_error: BaseException | None = None):
    import types

    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.9.0"

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO = 0, 1, 2, 3

        def __init__(self) -> None:
            pass

    class Builder:
        def __init__(self, logger) -> None:
            if builder_error is not None:
                raise builder_error
            self.logger = logger

    trt.ILogger, trt.Builder, trt.Runtime = ILogger, Builder, Builder
    return trt


def test_tensorrt_for_another_cuda_major_is_exit_4() -> None:
    from isodeploy.runtime.trt.runner import new_builder, new_runtime

    # what pybind raises when the C++ constructor returns null (libnvinfer built for another CUDA major)
    trt = _fake_trt(TypeError("pybind11::init(): factory function returned nullptr"))
    for make in (new_builder, new_runtime):
        with pytest.raises(IsodeployError, match="another CUDA major version") as err:
            make(trt)
        assert err.value.exit_code == EXIT_NO_CUDA and "\n" not in str(err.value)


def test_one_tensorrt_logger_per_process() -> None:
    from isodeploy.export.trt.build import make_logger
    from isodeploy.runtime.trt.runner import new_builder, shared_logger

    trt = _fake_trt()
    a, b = new_builder(trt), new_builder(trt)
    assert a.logger is b.logger is shared_logger(trt) is make_logger(trt)
    logger = shared_logger(trt)
    mark = logger.mark()
    logger.log(1, "first  error")
    assert logger.last_error(mark) == "first error" and logger.last_error(logger.mark()) == "no error message"
    assert sys.modules.get("tensorrt") is not trt  # nothing installed globally
