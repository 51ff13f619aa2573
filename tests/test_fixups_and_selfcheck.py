"""Module fix-ups by type and the self-checking apply: a model whose code derives a width the trace
can't see is never left broken — the class is frozen with the module and source line, or pruned once
a fix-up for its module type is registered; ``strict`` makes the freeze an error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import isodeploy
from isodeploy.core.errors import IsodeployError
from isodeploy.pruning.fixups import FIXUPS


class GroupedMixer(nn.Module):
    """Its forward reshapes by a stored width: ``x.view(b, self.groups, self.width // self.groups)``."""

    def __init__(self, width: int = 32, groups: int = 4) -> None:
        super().__init__()
        self.width, self.groups = width, groups
        self.inp = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x):
        b = x.shape[0]
        y = self.inp(x).view(b, self.groups, self.width // self.groups)  # the width lives in an attribute
        return self.out(torch.relu(y).reshape(b, -1))


class StoredShapeScale(nn.Module):
    """A layer-scale that stores its shape, like timm's metaformer ``Scale``: ``gamma.view(self.shape)``."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.shape = (dim,)
        self.gamma = nn.Parameter(torch.rand(dim) + 0.5)

    def forward(self, x):
        return x * self.gamma.view(self.shape)


class Net(nn.Module):
    def __init__(self, mixer: type = GroupedMixer) -> None:
        super().__init__()
        self.stem = nn.Linear(16, 32)
        self.mixer = mixer()
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.mixer(x)
        return self.head(x + self.mlp(x))


@pytest.fixture
def example():
    torch.manual_seed(0)
    return torch.randn(2, 16)


def _kinds_pruned(result) -> set[str]:
    return {c.kind for c in result.classes if c.width_after < c.width_before}


def test_an_unseen_width_is_frozen_with_module_and_line_and_the_rest_pruned(example):
    torch.manual_seed(0)
    model = Net().eval()
    result = isodeploy.prune(model, example, ratio=0.25, round_to=1)
    assert result.frozen, "the mixer's stored width went unnoticed"
    reasons = " ".join(f.reason for f in result.frozen)
    assert "mixer" in reasons and "test_fixups_and_selfcheck.py:" in reasons, reasons
    assert all(f.module == "mixer" for f in result.frozen)
    assert result.model.mlp[0].out_features < 64  # the MLP class still pruned
    with torch.no_grad():
        assert result.model(example).shape == (2, 4)  # the result always runs
    assert result.summary["frozen_classes"] and result.plan.macs_after < result.plan.macs_before


def test_strict_turns_the_freeze_into_one_error(example):
    with pytest.raises(IsodeployError, match=r"--strict: pruning class \d+ .*mixer") as info:
        isodeploy.prune(Net().eval(), example, ratio=0.25, round_to=1, strict=True)
    assert "\n" not in str(info.value)


def test_a_registered_fixup_lets_the_class_prune(example):
    torch.manual_seed(0)
    without = isodeploy.prune(Net(StoredShapeScale).eval(), example, ratio=0.25, round_to=1)
    assert [f.kind for f in without.frozen] == ["embedding"] and without.frozen[0].module == "mixer"

    @isodeploy.register_fixup(StoredShapeScale)
    def stored_shape(module, ctx):
        ctx.set(module, "shape", (module.gamma.shape[0],))

    try:
        torch.manual_seed(0)
        result = isodeploy.prune(Net(StoredShapeScale).eval(), example, ratio=0.25, round_to=1)
        assert not result.frozen
        assert result.model.mixer.shape == (24,) and result.model.stem.out_features == 24
        assert {"module": "mixer", "attrs": {"shape": (24,)}, "notes": {}} in result.spec["modules"]
    finally:
        FIXUPS[StoredShapeScale].remove(stored_shape)


def test_fixups_are_keyed_by_type_and_run_for_subclasses(example):
    class Wider(nn.Linear):
        pass

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(16, 32), Wider(32, 32), nn.Linear(32, 4)

        def forward(self, x):
            return self.c(torch.relu(self.b(torch.relu(self.a(x)))))

    result = isodeploy.prune(Model().eval(), example, ratio=0.5, round_to=1)
    assert result.model.b.in_features == result.model.b.weight.shape[1] < 32  # nn.Linear's fix-up ran for Wider
    assert result.model.b.out_features == result.model.b.weight.shape[0] < 32


class DerivedHeadAttention(nn.Module):
    """CaiT-style attention: the head width is derived from the *input* width, ``C // self.num_heads``."""

    def __init__(self, dim: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class TwoBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(16, 32)
        self.attn = nn.ModuleList([DerivedHeadAttention(), DerivedHeadAttention()])
        self.mlp = nn.ModuleList([nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32)) for _ in range(2)])
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        x = self.embed(x)
        for attn, mlp in zip(self.attn, self.mlp):
            x = x + attn(x)
            x = x + mlp(x)
        return self.head(x.mean(1))


def test_attention_that_derives_head_width_from_its_input_is_tied_not_frozen():
    torch.manual_seed(0)
    model, x = TwoBlocks().eval(), torch.randn(2, 5, 16)
    result = isodeploy.prune(model, x, ratio=0.25, round_to=1)
    assert not result.frozen, [f.reason for f in result.frozen]
    assert result.spec["tied_attention"] == ["attn.0", "attn.1"]
    attn = result.model.attn[0]
    assert attn.num_heads < 4 or attn.qkv.out_features < 96  # heads or head dims went, with the embedding
    assert result.model.embed.out_features == attn.qkv.in_features == attn.num_heads * (attn.qkv.out_features // 3 // attn.num_heads)
    with torch.no_grad():
        assert result.model(x).shape == (2, 3)
