"""Mixed-precision FP16 ONNX: runs on onnxruntime CPU, passes the FP16 gates, and the block list does real work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from isodeploy.core.errors import IsodeployError
from isodeploy.export.fp16 import DEFAULT_BLOCK_OPS, convert_fp16
from isodeploy.core.inputs import random_samples, to_batches
from isodeploy.export.onnx import export_onnx
from isodeploy.export.runners import OrtRunner, ReferenceRunner, TorchRunner
from isodeploy.export.verify import Gates, verify
from isodeploy.loading import load_model
from isodeploy.zoo import LoadedModel

torch.set_num_threads(1)  # robust on a shared 2-core box


def _fp16_gates(path: Path, module: nn.Module, input_size, samples: int = 14, runner=None):
    inputs = to_batches(random_samples(samples, input_size, seed=3), [1, 7])
    return verify(runner or OrtRunner(path, threads=1), TorchRunner(module), inputs, Gates.fp16())


def _typed_fp16_gates(path: Path, module: nn.Module, input_size):
    """FP16 gates with every tensor stored in its ONNX type (onnx's reference evaluator), as in a strongly
    typed TensorRT engine. onnxruntime CPU can hide the overflow: it runs FP16 regions without CPU
    kernels in FP32 and casts only at their borders (docs/export.md; platform-dependent, so not asserted)."""
    return _fp16_gates(path, module, input_size, runner=ReferenceRunner(path))


def _types(path: Path) -> tuple[dict[str, int], dict[int, int]]:
    """Graph I/O element types, and float weight elements per data type."""
    model = onnx.load(str(path))
    io = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    elements: dict[int, int] = {}
    for t in model.graph.initializer:
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            elements[t.data_type] = elements.get(t.data_type, 0) + int(np.prod(t.dims))
    return io, elements


@pytest.fixture(scope="module")
def deit_fp16(tmp_path_factory):
    loaded = load_model("deit_tiny_patch16_224", weights="random", img_size=32, patch_size=8, depth=2)
    folder = tmp_path_factory.mktemp("fp16")
    export_onnx(loaded, folder / "fp32.onnx")
    report = convert_fp16(folder / "fp32.onnx", folder / "fp16.onnx")
    return loaded, report


def test_deit_fp16_passes_the_fp16_gates(deit_fp16):
    loaded, report = deit_fp16
    result = _fp16_gates(Path(report.path), loaded.model, loaded.input_size)
    assert result.passed, result.failures
    stats = result.outputs[0]
    assert stats.min_cosine >= 0.999 and stats.top1_agreement >= 0.99
    assert 0 < stats.max_abs < 1e-2  # FP16 really changed the numbers, within FP16's precision


def test_fp16_weights_and_compute_with_fp32_io(deit_fp16):
    _, report = deit_fp16
    io, elements = _types(Path(report.path))
    assert set(io.values()) == {onnx.TensorProto.FLOAT}  # FP32 inputs and outputs by default
    # weights in FP16; only the LayerNorm scales/biases (a fraction of a percent) stay FP32
    assert elements[onnx.TensorProto.FLOAT16] > 0.99 * sum(elements.values())
    meta = {p.key: p.value for p in onnx.load(report.path, load_external_data=False).metadata_props}
    assert meta["isodeploy.precision"] == "fp16" and meta["isodeploy.source_model"] == "deit_tiny_patch16_224"


def test_report_names_every_fp32_node_and_why(deit_fp16):
    _, report = deit_fp16
    model = onnx.load(report.path)
    by_name = {n.name: n.op_type for n in model.graph.node}
    ln = [n for n in report.fp32_nodes if n["op"] == "LayerNormalization"]
    soft = [n for n in report.fp32_nodes if n["op"] == "Softmax"]
    assert len(ln) == 5 and len(soft) == 2
    assert all(n["reason"] == "block list" for n in ln + soft)
    for node in report.fp32_nodes:
        assert by_name.get(node["name"]) == node["op"]
    # blocked nodes really compute in FP32: their data input is the output of a Cast to float
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in ln:
        (ln_node,) = [n for n in model.graph.node if n.name == node["name"]]
        cast = producers[ln_node.input[0]]
        assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT


@pytest.mark.slow
def test_resnet50_fp16_passes_the_fp16_gates(tmp_path):
    loaded = load_model("resnet50", weights="random", img_size=64)
    export_onnx(loaded, tmp_path / "fp32.onnx")
    report = convert_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx")
    assert [n["op"] for n in report.fp32_nodes] == ["GlobalAveragePool"]
    result = _fp16_gates(tmp_path / "fp16.onnx", loaded.model, loaded.input_size, samples=7)
    assert result.passed, result.failures


class LargeResidual(nn.Module):
    """A residual stream far beyond FP16's 65504, normalised back by a LayerNorm (like a ViT's late blocks).

    Every weight is representable in FP16 (|w| ≤ 625); the residual branch's activations are not
    (std ≈ 8e4), so only keeping those nodes in FP32 gives the right answer.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(16, 64)
        self.mlp = nn.Linear(64, 64)
        self.norm = nn.LayerNorm(64)
        self.head = nn.Linear(64, 10)
        with torch.no_grad():
            self.embed.weight.mul_(50.0)
            self.mlp.weight.mul_(5000.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.mlp(h)
        return self.head(self.norm(h))


@pytest.fixture(scope="module")
def residual_onnx(tmp_path_factory):
    loaded = LoadedModel(model=LargeResidual().eval(), timm_name="large_residual", input_size=(16,), weights="random")
    path = tmp_path_factory.mktemp("residual") / "fp32.onnx"
    export_onnx(loaded, path)
    return loaded, path


def test_without_the_block_list_large_activations_fail_the_fp16_gates(residual_onnx, tmp_path):
    loaded, path = residual_onnx
    report = convert_fp16(path, tmp_path / "naive.onnx", block_ops=(), calib_inputs=[], safe_range=float("inf"))
    assert report.fp32_nodes == []
    result = _typed_fp16_gates(tmp_path / "naive.onnx", loaded.model, loaded.input_size)
    assert not result.passed
    assert result.outputs[0].nonfinite > 0  # the residual overflowed to inf, LayerNorm made NaN of it
    assert "NaN/inf" in result.failures[0] and "worst element" in result.failures[0]


def test_with_the_block_list_the_same_model_passes(residual_onnx, tmp_path):
    loaded, path = residual_onnx
    report = convert_fp16(path, tmp_path / "mixed.onnx")
    reasons = {n["op"]: n["reason"] for n in report.fp32_nodes}
    assert reasons["LayerNormalization"] == "block list"
    assert any("activation" in r and "safe range" in r for r in reasons.values())
    assert report.max_activation > 65504
    for result in (_typed_fp16_gates(tmp_path / "mixed.onnx", loaded.model, loaded.input_size),
                   _fp16_gates(tmp_path / "mixed.onnx", loaded.model, loaded.input_size)):
        assert result.passed, result.failures
    # the head still runs in FP16: only what must be FP32 is
    assert report.fp16_nodes > 0


def test_the_block_list_alone_is_not_enough_calibration_matters(residual_onnx, tmp_path):
    """LayerNorm in FP32 but no range check: the residual itself overflows before the norm sees it."""
    loaded, path = residual_onnx
    convert_fp16(path, tmp_path / "blockonly.onnx", calib_inputs=[])
    assert not _typed_fp16_gates(tmp_path / "blockonly.onnx", loaded.model, loaded.input_size).passed


def test_default_block_list_covers_the_issue_ops():
    for op in ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "Pow", "Sqrt"):
        assert op in DEFAULT_BLOCK_OPS


def test_converting_twice_or_in_place_is_refused(deit_fp16, tmp_path):
    _, report = deit_fp16
    with pytest.raises(IsodeployError, match="already FP16"):
        convert_fp16(Path(report.path), tmp_path / "again.onnx")
    with pytest.raises(IsodeployError, match="would overwrite"):
        convert_fp16(Path(report.path), Path(report.path))


def test_fp16_model_output_dtype_and_shape(deit_fp16):
    loaded, report = deit_fp16
    runner = OrtRunner(report.path)
    assert runner.precision == "fp16"
    (out,) = runner.run({"input": np.zeros((3, *loaded.input_size), np.float32)})
    assert out.dtype == np.float32 and out.shape == (3, 1000)
