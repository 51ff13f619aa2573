"""bench on CUDA (torch) and TensorRT: run where a GPU / TensorRT exists, skipped with the reason otherwise."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import torch

from isodeploy.benchmarking.suite import BenchSettings, run_bench
from isodeploy.cli import main
from isodeploy.loading import load_model

NO_CUDA = "no CUDA GPU visible to torch on this machine"
NO_TRT = "TensorRT is not installed (pip install 'isodeploy[trt]' on a machine with an NVIDIA GPU)"
TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2}

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
needs_trt = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason=NO_TRT)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_cuda_events_and_allocator_peak(precision: str) -> None:
    loaded = load_model("deit_tiny_patch16_224", weights="random", **TINY_VIT)
    weights_mb = sum(p.numel() for p in loaded.model.parameters()) * (4 if precision == "fp32" else 2) / 2**20
    report = run_bench([loaded], BenchSettings(runtimes=("torch",), device="cuda", batch=16, warmup=3, iters=10, precision=precision))
    (r,) = report.results
    assert (r.device, r.batch, r.precision) == ("cuda", 16, precision)
    assert r.timing.startswith("CUDA: events")
    assert r.latency.iters == 10 and r.latency.p50_ms > 0
    assert r.memory is not None and r.memory.method_id == "cuda-mem-get-info-fresh-process" and "cudaMemGetInfo" in r.memory.method
    assert r.memory.delta_mb >= weights_mb * 0.95
    input_mb = 16 * 3 * 32 * 32 * (4 if precision == "fp32" else 2) / 2**20
    assert r.memory.delta_mb >= weights_mb + input_mb * 0.9  # the I/O tensors count, as for every runtime
    assert report.env.get("gpu") and report.env.get("compute_capability")


@pytest.mark.gpu
@needs_cuda
def test_cuda_default_batch_is_256(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "resnet18", "--img-size", "32", "--weights", "random", "--device", "cuda", "--warmup", "2", "--iters", "5", "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())["results"]
    assert r["batch"] == 256 and r["device"] == "cuda" and r["memory"]["delta_mb"] > 40


@pytest.mark.gpu
@pytest.mark.trt
@needs_cuda
@needs_trt
def test_tensorrt_engine_from_onnx(tmp_path: Path) -> None:
    loaded = load_model("deit_tiny_patch16_224", weights="random", **TINY_VIT)
    onnx_path = tmp_path / "vit.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(loaded.model, (loaded.example_input(2),), str(onnx_path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    out = tmp_path / "b.json"
    # an FP32 ONNX: bench builds an FP16 engine on the fly (export helper's FP16 conversion + build_engine)
    assert main(["bench", str(onnx_path), "--runtime", "trt", "--batch", "8", "--warmup", "3", "--iters", "10", "--json", str(out)]) == 0
    (trt,) = json.loads(out.read_text())["results"]
    assert trt["device"] == "cuda" and trt["batch"] == 8
    assert trt["precision"] == "fp16" and trt["timing"].startswith("CUDA: events")
    assert trt["memory"] and trt["memory"]["method_id"] == "cuda-mem-get-info-fresh-process" and trt["memory"]["delta_mb"] > 0
    assert trt["latency"]["p50_ms"] > 0


@pytest.mark.gpu
@needs_cuda
def test_every_cuda_runner_is_measured_by_one_method(tmp_path: Path) -> None:
    """torch FP32, torch FP16 and (when present) onnxruntime CUDA / TensorRT: the same fresh-process method."""
    loaded = load_model("deit_tiny_patch16_224", weights="random", **TINY_VIT)
    methods = set()
    for precision in ("fp32", "fp16"):
        (r,) = run_bench([loaded], BenchSettings(runtimes=("torch",), device="cuda", batch=8, warmup=2, iters=4, precision=precision)).results
        methods.add(r.memory.method_id)
    assert methods == {"cuda-mem-get-info-fresh-process"}
