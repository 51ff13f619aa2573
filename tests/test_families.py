"""Regression tests for the timm families that used to fail coverage (issue #22's list), each on a
small instance."""

from __future__ import annotations

import onnx
import pytest
from onnx import helper

import isodeploy
from isodeploy.export.onnx import needs_newer_opset


def test_a_rope_vit_exports_at_the_opset_its_graph_needs(tmp_path):
    """torch writes Split(num_outputs=…) (opset 18) for RoPE at opset 17; the checker refused the file."""
    model = isodeploy.create_model("vit_small_patch16_rope_224", weights="random", img_size=32, depth=1, embed_dim=64, num_heads=2)
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.3)
    report = isodeploy.export_onnx(result.model, tmp_path / "m.onnx")
    assert report.opset == 18 and "Split with num_outputs" in (report.fallback or "")
    assert isodeploy.verify(tmp_path / "m.onnx", reference=result.model, samples=4).passed


def _split_graph(num_outputs: bool):
    attrs = {"num_outputs": 2} if num_outputs else {}
    node = helper.make_node("Split", ["x"], ["a", "b"], axis=0, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2]) for n in ("a", "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("num_outputs,opset,expected", [(True, 17, 18), (False, 17, None), (True, 18, None)])
def test_the_opset_check_finds_only_newer_op_forms(num_outputs, opset, expected):
    found = needs_newer_opset(_split_graph(num_outputs), opset)
    assert (found[0] if found else None) == expected


def test_mobileone_prunes_exports_and_verifies_despite_huge_random_activations(tmp_path):
    """Random-weight MobileOne reaches logits ~1e13 (re-parameterised branches summed, BatchNorm uncalibrated);
    a few near-zero logits differ between torch and onnxruntime by FP32 noise of those huge terms. The export
    is right (both sides are within ~1e-6 of the sample's scale from float64); verify judges them on that scale."""
    model = isodeploy.create_model("mobileone_s0", weights="random", img_size=64)
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.3)
    assert result.plan.macs_after < 0.8 * result.plan.macs_before  # a real cut
    isodeploy.export_onnx(result.model, tmp_path / "m.onnx")
    report = isodeploy.verify(tmp_path / "m.onnx", reference=result.model)
    assert report.passed, report.failures
    assert report.outputs[0].max_rel < 1e-3  # ≤ 1e-6 of the sample scale for the cancelled logits
