"""TensorRT build logic that needs no TensorRT: ONNX facts, profiles, precision paths, metadata, exit codes.

Real ONNX files come from torch.onnx.export of tiny models (and onnxconverter-common for an FP16 one).
"""

from __future__ import annotations

import json
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch

from isodeploy.cli import main
from isodeploy.core.errors import IsodeployError
from isodeploy.runtime.trt import env as trt_env
from isodeploy.runtime.trt.env import GpuInfo, TrtCaps, detect_caps
from isodeploy.runtime.trt.meta import EngineMeta, TensorMeta, check_engine_env, meta_path, read_engine_meta, timing_cache_file
from isodeploy.export.trt.onnx_prep import ProfileShape, profile_shapes, read_onnx_io
from isodeploy.export.trt.precision import plan_precision


def export_tiny(path: Path, *, dynamic_batch: bool = True, dynamic_hw: bool = False, hw: int = 16) -> Path:
    """A small conv net exported with the TorchScript exporter (fast, one file)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    axes = {}
    if dynamic_batch:
        axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
    if dynamic_hw:
        axes.setdefault("input", {}).update({2: "height", 3: "width"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, hw, hw),), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes or None, opset_version=17)
    return path


def to_fp16(src: Path, dst: Path) -> Path:
    import onnx
    from onnxconverter_common import float16

    onnx.save(float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))
    return dst


CAPS_10 = TrtCaps("10.7.0", strongly_typed_flag=True, fp16_builder_flag=True, tf32_builder_flag=True,
                  optimization_level=True, timing_cache=True, parse_from_file=True, named_io=True)
CAPS_11 = TrtCaps("11.1.0", strongly_typed_flag=True, fp16_builder_flag=False, tf32_builder_flag=True,
                  optimization_level=True, timing_cache=True, parse_from_file=True, named_io=True)
GPU = GpuInfo("NVIDIA H100 80GB HBM3", "9.0", "12.8")


# ---------------------------------------------------------------- ONNX facts and profile shapes
def test_profile_shapes_follow_batch_flags_and_onnx_dims(tmp_path):
    io = read_onnx_io(export_tiny(tmp_path / "m.onnx", hw=24))
    assert [(t.name, t.shape) for t in io.inputs] == [("input", [-1, 3, 24, 24])]
    assert [(t.name, t.dtype, t.shape) for t in io.outputs] == [("logits", "float32", [-1, 10])]
    assert io.low_precision is False
    shapes = profile_shapes(io, 1, 8, 256)
    assert shapes == [ProfileShape("input", [1, 3, 24, 24], [8, 3, 24, 24], [256, 3, 24, 24])]


@pytest.mark.parametrize("flags", [(0, 1, 2), (4, 2, 8), (1, 16, 8), (2, 1, 1)])
def test_batch_flags_out_of_order_are_rejected(tmp_path, flags):
    io = read_onnx_io(export_tiny(tmp_path / "m.onnx"))
    with pytest.raises(IsodeployError, match=r"batch flags out of order.*got " + ", ".join(map(str, flags))):
        profile_shapes(io, *flags)


def test_fixed_batch_onnx_allows_only_its_batch(tmp_path):
    io = read_onnx_io(export_tiny(tmp_path / "m.onnx", dynamic_batch=False))
    assert io.inputs[0].shape == [2, 3, 16, 16]
    with pytest.raises(IsodeployError, match="fixed batch of 2.*--min-batch 2 --opt-batch 2 --max-batch 2"):
        profile_shapes(io, 1, 8, 256)
    assert profile_shapes(io, 2, 2, 2)[0].max == [2, 3, 16, 16]


def test_dynamic_image_size_is_rejected_with_the_dim_name(tmp_path):
    io = read_onnx_io(export_tiny(tmp_path / "m.onnx", dynamic_hw=True))
    with pytest.raises(IsodeployError, match=r"dynamic dim 2 \('height'\).*--img-size"):
        profile_shapes(io, 1, 8, 16)


def test_fp16_onnx_is_detected(tmp_path):
    src = export_tiny(tmp_path / "m.onnx")
    io16 = read_onnx_io(to_fp16(src, tmp_path / "m16.onnx"))
    assert io16.low_precision is True
    assert io16.inputs[0].dtype == "float32" and io16.outputs[0].dtype == "float32"  # FP32 I/O kept


def test_broken_and_missing_onnx_are_one_line_errors(tmp_path):
    src = export_tiny(tmp_path / "m.onnx")
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 3])
    with pytest.raises(IsodeployError, match="not a readable ONNX file"):
        read_onnx_io(truncated)
    with pytest.raises(IsodeployError, match="does not exist"):
        read_onnx_io(tmp_path / "nope.onnx")


# ---------------------------------------------------------------- capabilities and the precision decision
def test_capabilities_come_from_hasattr_not_version_strings():
    def module(version, fp16):
        flag_names = {"TF32": 1, **({"FP16": 0} if fp16 else {})}
        return types.SimpleNamespace(
            __version__=version,
            NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=0),
            BuilderFlag=types.SimpleNamespace(**flag_names),
            IBuilderConfig=type("C", (), {"builder_optimization_level": 3, "create_timing_cache": None, "set_timing_cache": None}),
            OnnxParser=type("P", (), {"parse_from_file": None}),
            IExecutionContext=type("X", (), {"execute_async_v3": None, "set_tensor_address": None}),
        )

    # A "10.x" module that lost FP16 is treated like 11.x, and an "11.x" module that has it like 10.x.
    assert detect_caps(module("10.9.0", fp16=False)).weak_typing is False
    assert detect_caps(module("11.0.0", fp16=True)).weak_typing is True
    caps = detect_caps(module("11.1.0", fp16=False))
    assert caps.usable and caps.timing_cache and caps.optimization_level and caps.parse_from_file
    old = types.SimpleNamespace(__version__="8.6.1", NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0))
    assert detect_caps(old).usable is False


@pytest.mark.parametrize("caps", [CAPS_10, CAPS_11], ids=["trt10", "trt11"])
def test_fp16_is_strongly_typed_and_converts_only_fp32_onnx(caps):
    from_fp32 = plan_precision("fp16", onnx_low_precision=False, caps=caps)
    from_fp16 = plan_precision("fp16", onnx_low_precision=True, caps=caps)
    for plan in (from_fp32, from_fp16):
        assert plan.strongly_typed and not plan.builder_fp16_flag and not plan.disable_tf32
    assert (from_fp32.convert_fp16, from_fp32.fp16_source) == (True, "converted")
    assert (from_fp16.convert_fp16, from_fp16.fp16_source) == (False, "onnx")


def test_fp32_build_disables_tf32_and_refuses_an_fp16_onnx():
    plan = plan_precision("fp32", onnx_low_precision=False, caps=CAPS_11)
    assert plan.strongly_typed and plan.disable_tf32 and not plan.convert_fp16 and plan.fp16_source is None
    with pytest.raises(IsodeployError, match="mixed-precision.*--precision fp32 pass the FP32 ONNX"):
        plan_precision("fp32", onnx_low_precision=True, caps=CAPS_11)


def test_legacy_fp16_flag_only_where_tensorrt_still_has_it():
    plan = plan_precision("fp16-legacy", onnx_low_precision=False, caps=CAPS_10)
    assert plan.builder_fp16_flag and not plan.strongly_typed and plan.fp16_source == "builder-flag"
    with pytest.raises(IsodeployError, match="fp16-legacy needs BuilderFlag.FP16.*TensorRT 11.1.0"):
        plan_precision("fp16-legacy", onnx_low_precision=False, caps=CAPS_11)
    with pytest.raises(IsodeployError, match="unknown --precision 'int8'"):
        plan_precision("int8", onnx_low_precision=False, caps=CAPS_11)


# ---------------------------------------------------------------- metadata, compatibility, timing cache
def sample_meta(**over) -> EngineMeta:
    fields = dict(
        plan="model.plan", tensorrt_version="10.7.0", cuda_version="12.8", gpu_name=GPU.name, compute_capability="9.0",
        precision="fp16", strongly_typed=True, fp16_source="onnx",
        profile=[ProfileShape("input", [1, 3, 224, 224], [8, 3, 224, 224], [256, 3, 224, 224])],
        inputs=[TensorMeta("input", "float32", [-1, 3, 224, 224])], outputs=[TensorMeta("logits", "float32", [-1, 1000])],
        source_onnx="model.onnx", source_onnx_sha256="0" * 64, build_seconds=12.5, builder_optimization_level=3,
        workspace_bytes=None, timing_cache=None, plan_bytes=4, plan_sha256="1" * 64, created="2026-01-01T00:00:00+00:00",
        isodeploy_version="0.1.0")
    fields.update(over)
    return EngineMeta(**fields)


def test_metadata_round_trips_through_json(tmp_path):
    meta = sample_meta()
    plan = tmp_path / "model.plan"
    meta_path(plan).write_text(json.dumps(meta.to_dict()))
    back = read_engine_meta(plan)
    assert back == meta
    assert (back.min_batch, back.opt_batch, back.max_batch) == (1, 8, 256)
    assert meta_path(plan).name == "model.plan.json"


def test_metadata_errors_are_clear(tmp_path):
    plan = tmp_path / "model.plan"
    with pytest.raises(IsodeployError, match="model.plan.json' is missing"):
        read_engine_meta(plan)
    meta_path(plan).write_text('{"format": "something-else/2"}')
    with pytest.raises(IsodeployError, match="not isodeploy engine metadata"):
        read_engine_meta(plan)
    data = sample_meta().to_dict()
    del data["profile"]
    meta_path(plan).write_text(json.dumps(data))
    with pytest.raises(IsodeployError, match="lacks profile"):
        read_engine_meta(plan)


def test_engine_from_another_tensorrt_or_gpu_is_refused():
    meta = sample_meta()
    assert check_engine_env(meta, "10.7.0", GPU) == []
    with pytest.raises(IsodeployError, match="built with TensorRT 10.7.0 but this is TensorRT 10.8.0.*rebuild"):
        check_engine_env(meta, "10.8.0", GPU)
    with pytest.raises(IsodeployError, match=r"built for 'NVIDIA H100 80GB HBM3' \(compute capability 9.0\).*'NVIDIA A10' \(8.6\)"):
        check_engine_env(meta, "10.7.0", GpuInfo("NVIDIA A10", "8.6", "12.8"))
    warns = check_engine_env(meta, "10.7.0", GpuInfo("NVIDIA H200", "9.0", "12.8"))
    assert len(warns) == 1 and "same compute capability 9.0" in warns[0]


def test_timing_cache_is_keyed_by_tensorrt_version_and_gpu(tmp_path):
    a = timing_cache_file(tmp_path, "10.7.0", GPU)
    assert a.parent == tmp_path and a.name == "trt-10.7.0_nvidia-h100-80gb-hbm3_sm_90.timing-cache"
    assert timing_cache_file(tmp_path, "10.8.0", GPU) != a
    assert timing_cache_file(tmp_path, "10.7.0", GpuInfo("NVIDIA A10", "8.6", None)) != a


# ---------------------------------------------------------------- the CLI without TensorRT / without CUDA
@pytest.mark.skipif(trt_env.tensorrt_available() is None, reason="TensorRT is installed here: the 'not installed' path cannot run")
def test_build_engine_without_tensorrt_exits_3_with_one_line(tmp_path, capsys):
    onnx_path = export_tiny(tmp_path / "m.onnx")
    rc = main(["build-engine", str(onnx_path), "-o", str(tmp_path / "m.plan")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3
    assert err == ['error: TensorRT is not installed: pip install "isodeploy[trt]" (needs an NVIDIA GPU)']
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # nothing half-written


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: the 'no CUDA' path cannot run")
def test_build_engine_without_cuda_exits_4_with_one_line(tmp_path, capsys, monkeypatch):
    # A TensorRT wheel can be installed on a machine without a GPU; stand in for its module (import only).
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.7.0"
    fake.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=0)
    fake.IExecutionContext = type("X", (), {"execute_async_v3": None, "set_tensor_address": None})
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    onnx_path = export_tiny(tmp_path / "m.onnx")
    rc = main(["build-engine", str(onnx_path), "-o", str(tmp_path / "m.plan")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 4
    assert len(err) == 1 and err[0].startswith("error: CUDA is not available:") and "NVIDIA GPU" in err[0]


def test_build_engine_bad_input_is_checked_before_tensorrt(tmp_path, capsys):
    onnx_path = export_tiny(tmp_path / "m.onnx")
    cases = [
        (["--min-batch", "8", "--opt-batch", "4"], "batch flags out of order"),
        (["-o", str(tmp_path / "m.engine")], "must end in .plan"),
        (["--opt-level", "9"], "--opt-level must be in 0..5"),
        (["--workspace-gb", "0"], "--workspace-gb must be positive"),
        (["--precision", "int8"], "unknown --precision 'int8'"),
    ]
    for extra, message in cases:
        args = ["build-engine", str(onnx_path)] + (extra if "-o" in extra else ["-o", str(tmp_path / "m.plan"), *extra])
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    to_fp16(onnx_path, tmp_path / "h.onnx")
    assert main(["build-engine", str(tmp_path / "h.onnx"), "--precision", "fp32"]) == 2
    assert "mixed-precision (FP16) ONNX" in capsys.readouterr().err
    (tmp_path / "x.onnx").write_bytes(b"\x08\x07garbage")
    assert main(["build-engine", str(tmp_path / "x.onnx")]) == 2
    assert "not a readable ONNX file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.onnx", "m.onnx", "x.onnx"]
