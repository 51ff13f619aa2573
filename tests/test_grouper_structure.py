"""The grouper finds the groups and isomorphic classes the paper describes, on real timm models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make_model
from isodeploy.core.errors import IsodeployError
from isodeploy.graph.analysis import analyze


def _by_kind(grouping, kind):
    return [c for c in grouping.classes if c.kind == kind]


@pytest.mark.parametrize(
    "name,embed,heads,head_dim,mlp",
    [
        ("deit_base_patch16_224", 768, 12, 64, 3072),
        ("deit_small_patch16_224", 384, 6, 64, 1536),
        ("deit_tiny_patch16_224", 192, 3, 64, 768),
    ],
)
def test_deit_groups_and_classes(name, embed, heads, head_dim, mlp):
    model = make_model(name)
    grouping = analyze(model, torch.randn(2, 3, 224, 224), name=name)
    assert [c.kind for c in grouping.classes] == ["embedding", "heads", "head_dim", "hidden"]

    (emb_class,) = _by_kind(grouping, "embedding")
    (emb,) = grouping.groups_of(emb_class)
    assert emb.width == embed
    params = set(emb.params)
    expected = {"cls_token:2", "pos_embed:2", "patch_embed.proj.weight:0", "patch_embed.proj.bias:0",
                "norm.weight:0", "norm.bias:0", "head.weight:1"}
    for b in range(12):
        p = f"blocks.{b}."
        expected |= {p + "norm1.weight:0", p + "norm1.bias:0", p + "attn.qkv.weight:1", p + "attn.proj.weight:0",
                     p + "attn.proj.bias:0", p + "norm2.weight:0", p + "norm2.bias:0", p + "mlp.fc1.weight:1",
                     p + "mlp.fc2.weight:0", p + "mlp.fc2.bias:0"}
    assert params == expected

    (mlp_class,) = _by_kind(grouping, "hidden")
    mlp_groups = grouping.groups_of(mlp_class)
    assert len(mlp_groups) == 12 and {g.width for g in mlp_groups} == {mlp}
    assert set(mlp_groups[3].params) == {"blocks.3.mlp.fc1.weight:0", "blocks.3.mlp.fc1.bias:0", "blocks.3.mlp.fc2.weight:1"}

    for kind, width in (("heads", heads), ("head_dim", head_dim)):
        (iso,) = _by_kind(grouping, kind)
        groups = grouping.groups_of(iso)
        assert len(groups) == 12
        assert {g.width for g in groups} == {width}
        assert {g.heads for g in groups} == {(heads, head_dim)}
        assert set(groups[5].params) == {"blocks.5.attn.qkv.weight:0", "blocks.5.attn.qkv.bias:0", "blocks.5.attn.proj.weight:1"}

    unprunable = {u.param: u.reason for u in grouping.unprunable}
    assert "classifier" in unprunable["head.weight:0"] or "output" in unprunable["head.weight:0"]
    assert "input" in unprunable["patch_embed.proj.weight:1"]
    assert "unbind" in unprunable["blocks.0.attn.qkv.weight:0"]  # the q/k/v factor 3
    assert grouping.unsupported == []


def _weight_dims(model: nn.Module):
    """Every channel-like dim of every conv/linear/norm parameter (conv kernel dims excluded)."""
    for mname, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
            for pname, param in module.named_parameters(recurse=False):
                dims = range(min(param.dim(), 2))
                for d in dims:
                    if param.shape[d] > 1:
                        yield f"{mname}.{pname}:{d}"


@pytest.mark.parametrize(
    "name,kwargs,size",
    [
        ("resnet50", {}, 64),
        ("convnext_tiny", {}, 64),
        ("mobilenetv2_100", {}, 64),
        ("swin_tiny_patch4_window7_224", {"img_size": 64, "window_size": 4}, 64),
        ("efficientnet_b0", {}, 64),
    ],
)
def test_every_weight_is_grouped_or_explained(name, kwargs, size):
    model = make_model(name, **kwargs)
    grouping = analyze(model, torch.randn(2, 3, size, size), name=name)
    covered = {p for g in grouping.groups for p in g.params}
    explained = {u.param for u in grouping.unprunable}
    missing = [p for p in _weight_dims(model) if p not in covered and p not in explained]
    assert missing == []
    assert all(u.reason for u in grouping.unprunable)
    assert grouping.unsupported == []


def _class_of(grouping, param_label):
    return {g.class_id for g in grouping.groups if param_label in g.params}


def test_resnet50_bottleneck_widths_split_by_topology():
    grouping = analyze(make_model("resnet50"), torch.randn(2, 3, 64, 64), name="resnet50")
    conv1_out = _class_of(grouping, "layer3.2.conv1.weight:0")  # 1x1 -> 3x3
    conv2_out = _class_of(grouping, "layer3.2.conv2.weight:0")  # 3x3 -> 1x1
    assert len(conv1_out) == 1 and len(conv2_out) == 1 and conv1_out != conv2_out
    # identical blocks share a class; the stride-2 first block of a stage does not
    assert _class_of(grouping, "layer3.3.conv1.weight:0") == conv1_out
    assert _class_of(grouping, "layer3.0.conv2.weight:0") != conv2_out


def test_mobilenetv2_depthwise_expansion_is_its_own_class():
    grouping = analyze(make_model("mobilenetv2_100"), torch.randn(2, 3, 64, 64), name="mobilenetv2_100")
    expansion = _class_of(grouping, "blocks.2.1.conv_pw.weight:0")
    iso = grouping.classes[expansion.pop()]
    members = grouping.groups_of(iso)
    assert all(any(p.endswith("conv_dw.weight:0") for p in g.params) for g in members)
    # the projection (pw-linear) widths of the same blocks are a different class
    assert _class_of(grouping, "blocks.2.1.conv_pwl.weight:0") != {iso.id}
    resnet = analyze(make_model("resnet50"), torch.randn(2, 3, 64, 64), name="resnet50")
    assert {c.key for c in resnet.classes}.isdisjoint({iso.key})


def test_swin_relative_position_bias_follows_heads(grouped):
    _, _, grouping = grouped("swin")
    heads = [g for g in grouping.groups if g.kind == "heads"]
    assert heads, "Swin must have head groups"
    for group in heads:
        block = group.params[0].rsplit(".attn.", 1)[0]
        assert f"{block}.attn.relative_position_bias_table:1" in group.params
        assert f"{block}.attn.qkv.weight:0" in group.params


def test_levit_attention_biases_follow_heads_and_qk_v_dims_split(grouped):
    _, _, grouping = grouped("levit")
    heads = [g for g in grouping.groups if g.kind == "heads"]
    assert all(any(p.endswith("attention_biases:0") for p in g.params) for g in heads)
    dims = {c.signature for c in grouping.classes if c.kind == "head_dim"}
    assert len(dims) >= 2  # q/k key dim and value dim are different structures


def test_regnet_grouped_conv_has_group_count_groups(grouped):
    _, _, grouping = grouped("regnety")
    module = "s2.b1.conv2.conv"
    info = grouping.prop.convs[module]
    assert info.groups > 1 and info.group_atom is not None
    group_counts = [g for g in grouping.groups if g.atom == grouping.prop.atoms.find(info.group_atom)]
    assert len(group_counts) == 1 and group_counts[0].width == info.groups


class _CumsumMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)

    def forward(self, x):
        x = self.fc1(x.flatten(1)[:, :8]).relu()
        return self.fc3(self.fc2(x).cumsum(-1))


def test_op_without_rule_freezes_and_is_reported():
    model = _CumsumMLP().eval()
    grouping = analyze(model, torch.randn(2, 3, 2, 2), name="cumsum")
    grouped_params = {p for g in grouping.groups for p in g.params}
    assert "fc1.weight:0" in grouped_params  # untouched by cumsum
    assert "fc2.weight:0" not in grouped_params  # cumsum over fc2's outputs: frozen
    (op,) = grouping.unsupported
    assert op.op == "cumsum" and op.module == "" and "fc2.weight:0" in op.froze
    reasons = {u.param: u.reason for u in grouping.unprunable}
    assert "cumsum" in reasons["fc2.weight:0"]
    with pytest.raises(IsodeployError, match="cumsum"):
        analyze(model, torch.randn(2, 3, 2, 2), name="cumsum", strict=True)
