"""Regressions found in review: each case once broke forward after pruning, gave wrong outputs, or put
a group in the wrong kind."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import make_model
from isodeploy.graph.analysis import analyze
from isodeploy.pruning.apply import apply_keep


def _group_with(grouping, label):
    return next(g for g in grouping.groups if label in g.params)


def _prune_and_run(model, x, label, keep):
    grouping = analyze(model, x)
    group = _group_with(grouping, label)
    pruned = copy.deepcopy(model)
    apply_keep(pruned, grouping, {group.id: keep(group.width)})
    with torch.no_grad():
        return pruned(x), grouping, pruned


class _AffineFreeNorm(nn.Module):
    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(8, 16), norm, nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.norm(self.fc1(x)))


@pytest.mark.parametrize("norm", [nn.LayerNorm(16, elementwise_affine=False), nn.RMSNorm(16), "timm_rms"])
def test_norms_without_tensors_to_slice_get_their_shape_updated(norm):
    if norm == "timm_rms":
        from timm.layers import RmsNorm

        norm = RmsNorm(16)
    model = _AffineFreeNorm(norm).eval()
    out, _, pruned = _prune_and_run(model, torch.randn(2, 8), "fc1.weight:0", lambda w: list(range(w - 4)))
    assert out.shape == (2, 4)
    assert tuple(pruned.norm.normalized_shape) == (12,)


class _ConstantOffset(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)
        self.offset = torch.linspace(0, 1, 16)  # a plain tensor attribute: a lifted constant, nothing can slice it

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + self.offset)


def test_constant_tensors_freeze_their_channels():
    grouping = analyze(_ConstantOffset().eval(), torch.randn(2, 8))
    assert not any("fc1.weight:0" in g.params for g in grouping.groups)
    reasons = {u.param: u.reason for u in grouping.unprunable}
    assert "constant tensor" in reasons["fc1.weight:0"]


class _SumMeetsReshape(nn.Module):
    """Adding a dim split (4, 4) whose first part was reshaped to one split (2, 6) can't be aligned:
    every part on both sides must end frozen, none silently decoupled."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 8), nn.Linear(3, 8)
        self.fc3, self.fc4, self.fc5 = nn.Linear(4, 5), nn.Linear(2, 5), nn.Linear(6, 5)

    def forward(self, x):
        h = self.fc1(x)
        h1, _ = h.split([4, 4], dim=1)
        h1 = h1.reshape(-1, 2, 2).reshape(-1, 4)
        g = self.fc2(x)
        g1, g2 = g.split([2, 6], dim=1)
        return self.fc3(h1) + self.fc4(g1) + self.fc5(g2) + (h + g).sum(1, keepdim=True)


def test_failed_alignment_freezes_both_sides():
    grouping = analyze(_SumMeetsReshape().eval(), torch.randn(2, 3))
    grouped = {p for g in grouping.groups for p in g.params}
    for label in ("fc1.weight:0", "fc2.weight:0", "fc4.weight:1", "fc5.weight:1"):
        assert label not in grouped, label


def test_functional_grouped_conv_keeps_its_group_count():
    """timm's BlurPool calls F.conv2d(x, self.filt, groups=self.channels): nothing would update
    `channels`, so the channels it filters are frozen and every remaining group still prunes."""
    model = make_model("resnetblur18").eval()
    x = torch.randn(2, 3, 64, 64)
    grouping = analyze(model, x)
    assert not any("layer2.0.conv1.weight:0" in g.params for g in grouping.groups)
    assert any("functional grouped conv" in u.reason for u in grouping.unprunable)
    for group in grouping.groups:
        pruned = copy.deepcopy(model)
        apply_keep(pruned, grouping, {group.id: list(range(1, group.width))})
        with torch.no_grad():
            assert pruned(x).shape == (2, 1000)


def test_grn_inside_an_mlp_is_not_a_residual_stream():
    grouping = analyze(make_model("convnextv2_atto").eval(), torch.randn(2, 3, 64, 64))
    mlp = _group_with(grouping, "stages.0.blocks.0.mlp.fc1.weight:0")
    assert mlp.kind == "hidden"
    assert _group_with(grouping, "stem.0.weight:0").kind == "embedding"


def test_query_rescaling_only_for_the_fused_qkv_layout():
    """EfficientFormer's qkv rows are (heads, [k, k, v]): rescaling "the first third" would scale
    keys and values too. Only the traced (3, heads, head_dim) layout is rescaled."""
    from isodeploy.pruning.apply import _is_fused_qkv

    ef = analyze(make_model("efficientformer_l1").eval(), torch.randn(2, 3, 224, 224))
    path = next(iter(ef.prop.attention))
    assert not _is_fused_qkv(ef, path, ef.prop.attention[path])
    vit = analyze(make_model("deit_tiny_patch16_224", img_size=32, patch_size=8, depth=1).eval(), torch.randn(2, 3, 32, 32))
    assert _is_fused_qkv(vit, "blocks.0.attn", vit.prop.attention["blocks.0.attn"])


class _ScaledByBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)
        self.register_buffer("gain", torch.linspace(0.5, 2.0, 16), persistent=False)

    def forward(self, x):
        return self.fc2(self.fc1(x) * self.gain)


def test_non_persistent_buffers_survive_save_and_reload(tmp_path, monkeypatch):
    """A sliced non-persistent buffer must come back with its pruned shape and values."""
    import timm

    from isodeploy.pruning.spec import rebuild, tensors_to_save

    model = _ScaledByBuffer().eval()
    x = torch.randn(2, 8)
    out, grouping, pruned = _prune_and_run(model, x, "fc1.weight:0", lambda w: list(range(0, w, 2)))
    assert pruned.gain.shape == (8,)
    monkeypatch.setattr(timm, "is_model", lambda name: name == "scaled")
    monkeypatch.setattr(timm, "create_model", lambda name, pretrained=False, **kw: _ScaledByBuffer())
    spec = {"source": {"timm": "scaled"}, "modules": [{"module": "fc1", "attrs": {"out_features": 8}},
                                                      {"module": "fc2", "attrs": {"in_features": 8}}]}
    rebuilt = rebuild(spec, tensors_to_save(pruned)).eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), out)
