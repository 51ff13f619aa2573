"""The one op table: user-registered rules, checked rules, duplicate warnings, and one MAC formula
shared by the planner and bench (an einsum attention is where the two used to disagree)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import isodeploy
from isodeploy.benchmarking.macs import count_macs
from isodeploy.core.errors import IsodeployError
from isodeploy.graph.analysis import analyze
from isodeploy.graph.ops import TABLE, OpTable, register_op
from isodeploy.graph.ops.core import pointwise


@torch.library.custom_op("isodeploy_test::channel_gain", mutates_args=())
def channel_gain(x: torch.Tensor) -> torch.Tensor:
    """An op isodeploy has never heard of: elementwise, so channels pass straight through."""
    return x * 1.5


@channel_gain.register_fake
def _(x):
    return torch.empty_like(x)


class UsesCustomOp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(8, 32), nn.Linear(32, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.fc2(torch.ops.isodeploy_test.channel_gain(self.fc1(x))))


GAIN = torch.ops.isodeploy_test.channel_gain


@pytest.fixture
def clean_gain_entry():
    yield
    TABLE._specs.pop(OpTable.resolve(GAIN), None)


def _hidden_widths(grouping) -> list[int]:
    return [g.width for g in grouping.groups if any(p.startswith("fc1.weight") for p in g.params)]


def test_an_op_without_a_rule_freezes_and_is_reported(clean_gain_entry):
    grouping = analyze(UsesCustomOp(), torch.randn(2, 8))
    assert _hidden_widths(grouping) == []
    assert [u.op for u in grouping.unsupported] == ["channel_gain"] and grouping.unsupported[0].froze
    with pytest.raises(IsodeployError, match="channel_gain"):
        analyze(UsesCustomOp(), torch.randn(2, 8), strict=True)


def test_a_user_rule_makes_the_op_prunable_without_editing_isodeploy(clean_gain_entry):
    # per call …
    grouping = analyze(UsesCustomOp(), torch.randn(2, 8), rules={GAIN: pointwise})
    assert _hidden_widths(grouping) == [32] and not grouping.unsupported
    # … or registered for good, then the whole prune works on it
    isodeploy.register_op(GAIN, rule=pointwise)
    result = isodeploy.prune(UsesCustomOp(), torch.randn(2, 8), ratio=0.5, round_to=1)
    assert result.model.fc1.out_features == 16 and not result.frozen


def test_registering_a_field_twice_warns(clean_gain_entry):
    register_op(GAIN, rule=pointwise)
    with pytest.warns(UserWarning, match="already has a rule"):
        register_op(GAIN, rule=pointwise)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_op(GAIN, rule=pointwise, replace=True)
        register_op(GAIN, macs=lambda node, shape: 0)  # another field: no warning


def _raising_rule(prop, node):
    raise IndexError("tuple index out of range")


def _wrong_rule(prop, node):
    return prop.fresh((2, 5))  # the trace says (2, 32)


@pytest.mark.parametrize("bad_rule,why", [(_raising_rule, "raised IndexError"), (_wrong_rule, "dim 1 has factors of size 5")])
def test_a_failing_rule_freezes_with_the_reason_or_errors_under_strict(clean_gain_entry, bad_rule, why):
    grouping = analyze(UsesCustomOp(), torch.randn(2, 8), rules={GAIN: bad_rule})
    assert _hidden_widths(grouping) == []
    reasons = [u.op for u in grouping.unsupported]
    assert reasons == ["channel_gain"]
    events = [e.reason for e in grouping.prop.events if e.unsupported]
    assert any(why in r and "node 'channel_gain'" in r for r in events), events
    with pytest.raises(IsodeployError) as info:
        analyze(UsesCustomOp(), torch.randn(2, 8), rules={GAIN: bad_rule}, strict=True)
    text = str(info.value)
    assert why in text and "node 'channel_gain'" in text and "channel_gain" in text and "\n" not in text
    assert "test_op_table.py:" in text  # strict traces keep source lines: the error names the model's line


class EinsumAttention(nn.Module):
    """Attention written with einsum (the planner used to count 37,888 MACs where bench counted 54,272)."""

    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj, self.head = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), nn.Linear(dim, 5)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.einsum("bhqd,bhkd->bhqk", q, k).softmax(-1)
        out = torch.einsum("bhqk,bhkd->bhqd", attn, v).transpose(1, 2).reshape(b, n, c)
        return self.head(self.proj(out).mean(1))


@pytest.mark.parametrize("make", [lambda: EinsumAttention(), lambda: __import__("timm").create_model(
    "deit_tiny_patch16_224", img_size=32, patch_size=8, depth=2)], ids=["einsum-attention", "deit"])
def test_planner_and_bench_count_the_same_macs(make):
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(2, 6, 32) if isinstance(model, EinsumAttention) else torch.randn(2, 3, 32, 32)
    result = isodeploy.prune(model, x, ratio=0.3, round_to=1)
    assert result.plan.macs_before == count_macs(model, x).macs
    assert result.plan.macs_after == count_macs(result.model, x).macs
    assert result.plan.macs_after < result.plan.macs_before
    einsum_macs = count_macs(model, x).by_op.get("einsum", 0)
    assert einsum_macs == (0 if not isinstance(model, EinsumAttention) else 2 * 4 * 6 * 6 * 8)
