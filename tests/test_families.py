"""Regression tests for the timm families that used to fail coverage (issue #22's list), each on a
small instance."""

from __future__ import annotations

import onnx
import pytest
import torch
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


def test_nf_resnet_prunes_through_its_weight_standardisation(tmp_path):
    """timm's ScaledStdConv2d standardises its weight in forward (batch_norm over weight.reshape(1, out, -1)):
    the conv saw a computed weight, its parameters reached no Linear/Conv weight and every class froze (96.7 %
    of MACs left). The grouper now follows a computed weight back to its parameter."""
    model = isodeploy.create_model("nf_resnet26", weights="random", img_size=32)
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.3)
    assert not result.frozen
    assert result.plan.macs_after < 0.6 * result.plan.macs_before
    isodeploy.export_onnx(result.model, tmp_path / "m.onnx")
    assert isodeploy.verify(tmp_path / "m.onnx", reference=result.model, samples=4).passed


def _standardised(conv) -> torch.Tensor:
    """The weight a timm StdConv2d/ScaledStdConv2d convolves with (its forward's batch_norm, written out)."""
    w = conv.weight.detach().reshape(conv.out_channels, -1).double()
    w = (w - w.mean(1, keepdim=True)) / (w.var(1, unbiased=False, keepdim=True) + conv.eps).sqrt()
    gain = conv.gain.detach().reshape(-1, 1).double() * conv.scale if hasattr(conv, "gain") else 1.0
    return (w * gain).reshape(conv.weight.shape)


def test_scaled_std_conv_pruned_filters_are_the_dense_ones_on_the_kept_inputs_re_centred():
    """Out channels are exact; a pruned fan-in keeps each filter's scale (the gain takes the variance change),
    and the filter is the dense one on the kept inputs minus its mean there (standardised: zero mean)."""
    from timm.layers.std_conv import ScaledStdConv2d

    torch.manual_seed(0)
    model = torch.nn.Sequential(ScaledStdConv2d(4, 16, 3), torch.nn.ReLU(), ScaledStdConv2d(16, 6, 1)).eval()
    dense0, dense2 = _standardised(model[0]), _standardised(model[2])
    result = isodeploy.prune(model, torch.randn(2, 4, 8, 8), ratio=0.5)
    pruned = result.model
    assert pruned[0].out_channels == pruned[2].in_channels == 8
    kept = [next(i for i in range(16) if torch.equal(model[0].weight[i], row)) for row in pruned[0].weight]
    assert torch.allclose(_standardised(pruned[0]), dense0[kept], atol=1e-6)  # rows: exact
    target = dense2[:, kept]
    target = target - target.reshape(6, -1).mean(1).view(-1, 1, 1, 1)
    assert torch.allclose(_standardised(pruned[2]), target, atol=1e-6)
    x = torch.randn(2, 4, 8, 8)
    assert pruned(x).shape == model(x).shape


def test_a_weight_standardisation_without_a_gain_keeps_its_fan_in():
    """timm's StdConv2d has no gain to take the variance change: its fan-in is frozen, with the reason."""
    from timm.layers.std_conv import StdConv2d

    model = torch.nn.Sequential(StdConv2d(4, 16, 3), torch.nn.ReLU(), StdConv2d(16, 6, 1)).eval()
    grouping = isodeploy.analyze(model, torch.randn(2, 4, 8, 8))
    atom = grouping.prop.state_dims["2.weight"][1][0]
    assert "re-standardises every kept weight" in (grouping.prop.atoms.frozen_reason(atom) or "")


def test_mixnet_prunes_with_its_stored_split_sizes_updated(tmp_path):
    """MixNet's MixedConv2d splits its input with a stored list (``torch.split(x, self.splits, 1)``): the
    self-check froze every class (split_with_sizes expects … to sum exactly to …). A fix-up sets the list
    from the child convs; a reload restores it."""
    model = isodeploy.create_model("mixnet_s", weights="random", img_size=32)
    example = isodeploy.example_inputs(model)
    result = isodeploy.prune(model, example, ratio=0.3)
    assert not result.frozen
    assert result.plan.macs_after < 0.7 * result.plan.macs_before
    isodeploy.export_onnx(result.model, tmp_path / "m.onnx")
    assert isodeploy.verify(tmp_path / "m.onnx", reference=result.model, samples=4).passed
    isodeploy.save(result, tmp_path / "saved")
    back = isodeploy.load(tmp_path / "saved").eval()
    with torch.no_grad():
        assert torch.equal(back(example), result.model.eval()(example))


def test_an_edited_split_list_is_refused_on_reload():
    from timm.layers.mixed_conv2d import MixedConv2d

    from isodeploy.core.errors import IsodeployError
    from isodeploy.pruning.restore import check_consistent

    module = MixedConv2d(8, 8, [3, 5], depthwise=True)
    check_consistent(module, "m", {"splits"})
    module.splits = [5, 3]
    with pytest.raises(IsodeployError, match="splits"):
        check_consistent(module, "m", {"splits"})


def test_nest_attention_finds_its_heads_among_five_dims(tmp_path):
    """NesT's attention is (B, heads, blocks, N, E): the heads are the batch dim that came from the qkv
    weight, not the last one (the image blocks) — it used to freeze every class (100 % MACs kept)."""
    model = isodeploy.create_model("nest_tiny", weights="random", img_size=64)
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.3)
    kinds = {c["kind"] for c in result.spec["classes"] if not c["frozen"]}
    assert {"heads", "head_dim", "hidden"} <= kinds, result.spec["classes"]
    assert result.spec["macs"]["after"] < 0.8 * result.spec["macs"]["before"]
    isodeploy.export_onnx(result.model, tmp_path / "m.onnx")
    assert isodeploy.verify(tmp_path / "m.onnx", reference=result.model, samples=4).passed
