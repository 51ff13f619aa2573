"""Real TensorRT engines for a small ViT and a small CNN, run on the GPU and compared with onnxruntime FP32.

Skipped, with the reason shown (pytest -ra), wherever TensorRT or a CUDA GPU is absent.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from isodeploy.core.errors import IsodeployError
from isodeploy.runtime.trt.env import cuda_available, tensorrt_available

_NO_TRT = tensorrt_available()
_NO_CUDA = cuda_available()
pytestmark = [
    pytest.mark.trt,
    pytest.mark.gpu,
    pytest.mark.skipif(_NO_TRT is not None, reason=_NO_TRT or ""),
    pytest.mark.skipif(_NO_CUDA is not None, reason=_NO_CUDA or ""),
]

MODELS = {
    "vit": ("deit_tiny_patch16_224", dict(img_size=32, patch_size=8, depth=2)),
    "cnn": ("resnet18", dict(img_size=64)),
}


def export(kind: str, folder: Path) -> tuple[Path, tuple[int, int, int]]:
    import torch

    from isodeploy.loading import load_model

    name, kwargs = MODELS[kind]
    loaded = load_model(name, weights="random", **kwargs)
    path = folder / f"{kind}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(loaded.model, (loaded.example_input(2),), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}}, opset_version=17)
    return path, loaded.input_size


def ort_run(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module", params=sorted(MODELS))
def fp32_engine(request, tmp_path_factory):
    from isodeploy.export.trt.build import build_engine

    folder = tmp_path_factory.mktemp(request.param)
    onnx_path, size = export(request.param, folder)
    meta = build_engine(onnx_path, folder / f"{request.param}.plan", precision="fp32", min_batch=1, opt_batch=4,
                        max_batch=8, timing_cache=folder / "caches")
    return onnx_path, folder / f"{request.param}.plan", size, meta


def test_fp32_engine_matches_onnxruntime(fp32_engine):
    from isodeploy.runtime.trt.runner import TrtRunner

    onnx_path, plan, size, meta = fp32_engine
    assert (meta.min_batch, meta.opt_batch, meta.max_batch) == (1, 4, 8) and meta.precision == "fp32"
    assert [t.shape for t in meta.inputs] == [[-1, *size]] and meta.outputs[0].shape == [-1, 1000]
    runner = TrtRunner(plan)
    assert (runner.input_names, runner.output_names) == (["input"], ["logits"]) and runner.device_memory_bytes > 0
    for batch in (1, 5, 8):
        x = np.random.default_rng(batch).standard_normal((batch, *size)).astype(np.float32)
        got, want = runner.run({"input": x})[0], ort_run(onnx_path, x)
        assert got.shape == (batch, 1000) and got.dtype == np.float32
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * max(scale, 1.0))
    with pytest.raises(IsodeployError, match="outside the engine's profile"):
        runner.run({"input": np.zeros((9, *size), np.float32)})


def test_device_side_bind_execute_for_bench(fp32_engine):
    import torch

    from isodeploy.runtime.trt.runner import TrtRunner

    onnx_path, plan, size, _ = fp32_engine
    runner = TrtRunner(plan)
    x = torch.randn(4, *size, device="cuda")
    (out,) = runner.bind({"input": x})
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record(runner.stream)
    runner.execute()
    end.record(runner.stream)
    end.synchronize()
    assert start.elapsed_time(end) > 0 and out.is_cuda and tuple(out.shape) == (4, 1000)
    want = ort_run(onnx_path, x.cpu().numpy())
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-3, atol=1e-3 * max(float(np.abs(want).max()), 1.0))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_fp16_engine_from_a_mixed_precision_onnx_passes_fp16_gates(kind, tmp_path):
    import onnx
    from onnxconverter_common import float16

    from isodeploy.export.trt.build import build_engine
    from isodeploy.runtime.trt.runner import TrtRunner

    onnx_path, size = export(kind, tmp_path)
    blocked = ["LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt"]
    fp16 = float16.convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True, op_block_list=blocked)
    onnx.save(fp16, str(tmp_path / "fp16.onnx"))
    meta = build_engine(tmp_path / "fp16.onnx", tmp_path / "m.plan", precision="fp16", max_batch=8)
    assert (meta.strongly_typed, meta.fp16_source) == (True, "onnx")
    x = np.random.default_rng(0).standard_normal((6, *size)).astype(np.float32)
    got, want = TrtRunner(tmp_path / "m.plan").run({"input": x})[0], ort_run(onnx_path, x)
    assert cosine_rows(got, want).min() >= 0.999


def test_fp32_onnx_hand_off_builds_an_fp16_engine(tmp_path):
    pytest.importorskip("isodeploy.export.fp16", reason="the export helper's FP16 converter is not there yet")
    from isodeploy.export.trt.build import build_engine
    from isodeploy.runtime.trt.runner import TrtRunner

    onnx_path, size = export("vit", tmp_path)
    meta = build_engine(onnx_path, tmp_path / "m.plan", precision="fp16", max_batch=8)
    assert meta.fp16_source == "converted"
    x = np.random.default_rng(1).standard_normal((4, *size)).astype(np.float32)
    assert cosine_rows(TrtRunner(tmp_path / "m.plan").run({"input": x})[0], ort_run(onnx_path, x)).min() >= 0.999


def test_engine_from_another_tensorrt_version_or_gpu_is_a_clear_error(fp32_engine, tmp_path):
    from isodeploy.runtime.trt.runner import TrtRunner

    _, plan, _, _ = fp32_engine
    for field, value, message in [("tensorrt_version", "9.0.0", "built with TensorRT 9.0.0"),
                                  ("compute_capability", "1.0", "compute capability 1.0")]:
        copy = tmp_path / f"{field}.plan"
        shutil.copyfile(plan, copy)
        meta = json.loads(Path(f"{plan}.json").read_text())
        meta[field] = value
        Path(f"{copy}.json").write_text(json.dumps(meta))
        with pytest.raises(IsodeployError, match=message):
            TrtRunner(copy)


def test_triton_config_from_a_real_engine(fp32_engine, tmp_path):
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    from isodeploy.runtime.trt.runner import TrtRunner
    from isodeploy.serve.triton_repo import write_triton_repo

    _, plan, _, meta = fp32_engine
    write_triton_repo(plan, "engine", tmp_path / "repo")
    cfg = text_format.Parse((tmp_path / "repo" / "engine" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    runner = TrtRunner(tmp_path / "repo" / "engine" / "1" / "model.plan")  # the copy still passes its checks
    assert cfg.max_batch_size == meta.max_batch == 8
    assert [i.name for i in cfg.input] == runner.input_names and [o.name for o in cfg.output] == runner.output_names


def test_verify_dispatches_plans_to_the_engine_runner(fp32_engine):
    runners = pytest.importorskip("isodeploy.export.runners", reason="the export helper's runners.py is not there yet")
    _, plan, _, _ = fp32_engine
    assert runners.open_runner(plan).name == "tensorrt"
