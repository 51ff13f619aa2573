"""`isodeploy bench` end to end on small real models and ONNX files, and every bad input."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import onnx
import pytest
import torch

from isodeploy.benchmarking.suite import BenchSettings, run_bench
from isodeploy.cli import main
from isodeploy.loading import load_model

torch.set_num_threads(2)
TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2}
TINY_VIT_MACS = 16_044_288  # hand count, see test_macs.py
FAST = ["--warmup", "1", "--iters", "3", "--threads", "1"]


@pytest.fixture(scope="module")
def vit_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DeiT as a real ONNX file whose metadata names its source, as `isodeploy export` writes it."""
    loaded = load_model("deit_tiny_patch16_224", weights="random", **TINY_VIT)
    path = tmp_path_factory.mktemp("bench") / "vit.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(loaded.model, (loaded.example_input(2),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    model = onnx.load(str(path))
    for key, value in {"isodeploy.source_model": "deit_tiny_patch16_224", "isodeploy.create_kwargs": json.dumps(TINY_VIT)}.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    return path


def test_onnx_on_ort_with_macs_from_metadata_and_memory(vit_onnx: Path, tmp_path: Path) -> None:
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    assert main(["bench", str(vit_onnx), "--runtime", "ort", "--batch", "2", *FAST, "--json", str(out), "--md", str(md)]) == 0
    data = json.loads(out.read_text())
    (r,) = data["results"]
    assert (r["label"], r["runtime"], r["device"], r["batch"], r["kind"]) == ("vit.onnx", "ort", "cpu", 2, "onnx")
    assert r["input_shape"] == [2, 3, 32, 32]
    assert r["macs"] == TINY_VIT_MACS
    lat = r["latency"]
    assert lat["iters"] == 3 and len(lat["samples_ms"]) == 3 and 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    assert r["threads"] == 1 and data["settings"]["warmup"] == 1
    mem = r["memory"]
    weights_mb = vit_onnx.stat().st_size / 2**20
    assert mem["peak_mb"] > mem["baseline_mb"] > 0
    assert mem["delta_mb"] > 0.8 * weights_mb  # loading the weights alone costs about the file size
    assert "fresh subprocess" in mem["method"]
    assert "CPU figures are relative" in " ".join(data["notes"])
    assert data["env"]["cores"] >= 1 and "onnxruntime" in data["env"]["libraries"]
    assert "| vit.onnx | ort | cpu | 2 | 0.02 G |" in md.read_text()


def test_model_on_torch_with_memory_probe(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "resnet18", "--img-size", "32", "--weights", "random", "--batch", "2", *FAST, "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())["results"]
    assert (r["label"], r["runtime"], r["pruned"]) == ("resnet18@32", "torch", False)
    assert r["params"] == 11_689_512
    assert r["macs"] == 37_523_456  # ResNet-18 at 32 px, by hand: see test_macs.basic_resnet_macs
    assert r["memory"]["delta_mb"] > 11_689_512 * 4 / 2**20 * 0.9  # at least the fp32 weights


def test_python_api_with_a_loaded_model() -> None:
    loaded = load_model("deit_tiny_patch16_224", weights="random", **TINY_VIT)
    report = run_bench([loaded], BenchSettings(runtimes=("torch",), batch=2, warmup=1, iters=3, threads=1, memory=False))
    (r,) = report.results
    assert r.macs == TINY_VIT_MACS and r.label == "deit_tiny_patch16_224" and r.latency.iters == 3
    assert r.memory is None


@pytest.mark.skipif(importlib.util.find_spec("isodeploy.export.onnx") is None, reason="isodeploy.export.onnx (the export helper's module) is absent")
def test_model_on_torch_and_ort(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "resnet18", "-r", "torch,ort", "--img-size", "32", "--weights", "random", "--batch", "2", *FAST, "--no-memory", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert [(r["runtime"], r["macs"]) for r in results] == [("torch", 37_523_456), ("ort", 37_523_456)]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["notes.txt"], 2, "unknown artifact type '.txt'"),
    (["missing.onnx"], 2, "artifact 'missing.onnx' does not exist"),
    (["deit_smal_patch16_224"], 2, "unknown model 'deit_smal_patch16_224'"),
    (["vit.onnx", "--runtime", "torch"], 2, "cannot run on runtime torch; use --runtime ort or trt"),
    (["vit.onnx", "--runtime", "tflite"], 2, "unknown runtime 'tflite'"),
    (["vit.onnx", "--runtime", "ort", "--iters", "1"], 2, "--iters ≥ 2"),
    (["vit.onnx", "--runtime", "ort", "--device", "tpu"], 2, "unknown device 'tpu'"),
    (["vit.onnx", "--runtime", "trt", "--device", "cpu"], 2, "use --device cuda"),
])
def test_bad_input_is_one_line(args: list[str], code: int, message: str, vit_onnx: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "vit.onnx").symlink_to(vit_onnx)
    assert main(["bench", *args, "--no-memory", "--weights", "random"]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU; the no-GPU error cannot happen")
def test_cuda_without_gpu_exits_4(vit_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "resnet18", "--device", "cuda", "--weights", "random", "--no-memory"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed; the missing-TensorRT error cannot happen")
def test_trt_without_tensorrt_exits_3(vit_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(vit_onnx), "--runtime", "trt", "--no-memory"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TensorRT is not installed" in err and 'pip install "isodeploy[trt]"' in err
