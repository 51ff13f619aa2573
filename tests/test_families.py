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


def _gainless_types():
    from timm.layers.std_conv import StdConv2d, StdConv2dSame

    types = [StdConv2d, StdConv2dSame]
    try:
        from transformers.models.bit.modeling_bit import WeightStandardizedConv2d
    except ImportError:  # the [hf] extra is optional
        return types
    return types + [WeightStandardizedConv2d]


@pytest.mark.parametrize("conv_type", _gainless_types(), ids=lambda t: t.__name__)
def test_a_weight_standardisation_without_a_gain_is_baked_and_exact(conv_type, tmp_path):
    """No gain can take the variance change of a pruned fan-in, so the dense standardised weight is stored
    and the class becomes Baked…: the pruned model equals the dense one with the cut channels zeroed."""
    from isodeploy.pruning.standardised import BakedStandardisation

    torch.manual_seed(0)
    model = torch.nn.Sequential(conv_type(4, 16, 3), torch.nn.ReLU(), conv_type(16, 6, 1, stride=1)).eval()
    x = torch.randn(2, 4, 9, 9)
    result = isodeploy.prune(model, x, ratio=0.5)
    pruned = result.model
    assert not result.frozen and pruned[2].in_channels == 8
    assert isinstance(pruned[2], BakedStandardisation) and not isinstance(pruned[0], BakedStandardisation)
    kept = [next(i for i in range(16) if torch.equal(model[0].weight[i], row)) for row in pruned[0].weight]
    mask = torch.zeros(1, 16, 1, 1)
    mask[:, kept] = 1
    with torch.no_grad():
        expected = model[2](model[1](model[0](x)) * mask)
        assert torch.allclose(pruned(x), expected, atol=1e-5)
    notes = {m["module"]: m.get("notes", {}) for m in result.spec["modules"]}
    assert notes["2"].get("standardisation") == "baked" and "standardisation" not in notes.get("0", {})


class _OwnStdConv(torch.nn.Conv2d):
    """A weight standardisation isodeploy has never seen (no gain, no fix-up)."""

    def forward(self, x):
        w = torch.nn.functional.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True,
                                           eps=1e-6).reshape_as(self.weight)
        return torch.nn.functional.conv2d(x, w, self.bias)


def test_an_unknown_weight_standardisation_keeps_its_fan_in():
    """A type RESTANDARDISED does not name has no remedy: its fan-in is frozen, with the reason."""
    model = torch.nn.Sequential(_OwnStdConv(4, 16, 3), torch.nn.ReLU(), _OwnStdConv(16, 6, 1)).eval()
    grouping = isodeploy.analyze(model, torch.randn(2, 4, 8, 8))
    atom = grouping.prop.state_dims["2.weight"][1][0]
    assert "re-standardises every kept weight" in (grouping.prop.atoms.frozen_reason(atom) or "")


def test_pvt_v2_keeps_its_key_reduction_at_the_input_width(tmp_path):
    """PVT-v2 reads the input width C for ``self.sr(x.reshape(B, C, H, W)).reshape(B, C, -1)``: with the
    attention tied to its input, the reduction conv's output is tied too. Before, the head-dim and hidden
    classes froze (72 % of MACs kept)."""
    model = isodeploy.create_model("pvt_v2_b0", weights="random", img_size=64)
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.3)
    assert not result.frozen, [f.reason for f in result.frozen]
    assert result.plan.macs_after < 0.5 * result.plan.macs_before
    assert result.spec["tied_attention"]
    isodeploy.export_onnx(result.model, tmp_path / "m.onnx")
    assert isodeploy.verify(tmp_path / "m.onnx", reference=result.model, samples=4).passed


def test_an_attribute_that_is_not_the_traced_head_count_is_left_alone():
    """timm's HaloAttn: the trace's heads dim is twice ``num_heads`` (its reshapes fold blocks into it), and
    the fix-up overwrote ``num_heads`` with that size even with every class dense, so the unpruned model
    failed the self-check. An attribute now follows an atom only where it holds that atom's dense size."""
    model = isodeploy.create_model("halonet26t", weights="random")
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.3)
    assert not result.frozen and result.plan.macs_after < 0.7 * result.plan.macs_before
    dense_heads = {n: m.num_heads for n, m in model.named_modules() if type(m).__name__ == "HaloAttn"}
    pruned_heads = {n: m.num_heads for n, m in result.model.named_modules() if type(m).__name__ == "HaloAttn"}
    assert dense_heads and all(pruned_heads[n] <= h for n, h in dense_heads.items())
