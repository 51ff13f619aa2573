"""The grouper's correctness proof for constructs the family tests miss: concatenation with offsets,
split/chunk, grouped convs, shared modules and MobileViT's fusion — and planted bugs it must catch.

Dead-channel equivalence: zero what *produces* some channels of a group (output rows, biases, norm
affines), slice those channels out, and the outputs must not change. Wrong index maps (a swapped
concatenation, a member left unsliced) make them change or break.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from isodeploy.graph.analysis import analyze
from isodeploy.graph.ops import TABLE, OpTable
from isodeploy.graph.ops import shape as shape_rules
from isodeploy.pruning import apply as apply_mod
from isodeploy.pruning.apply import apply_keep

from conftest import make_model, randomize_norms


class SplitBranchesCat(nn.Module):
    """stem → split into unequal parts → a grouped conv and an MLP branch → cat → split → cat swapped → head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 40, 3, padding=1)
        self.bn = nn.BatchNorm2d(40)
        self.left = nn.Conv2d(24, 24, 3, padding=1, groups=4)  # a grouped conv on the first part
        self.right = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Conv2d(32, 16, 1))
        self.fuse = nn.Conv2d(40, 48, 1)
        self.chunked = nn.Conv2d(24, 24, 1)
        self.head = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Split sizes come from the branches' own attributes (which pruning keeps up to date), never
        # from literals: a literal would tie the widths in code, and the self-check would freeze them.
        x = torch.relu(self.bn(self.stem(x)))
        a, b = torch.split(x, [self.left.in_channels, self.right[0].in_channels], dim=1)
        y = torch.cat([self.left(a), self.right(b)], dim=1)
        y = self.fuse(y)
        p, q = torch.split(y, [self.chunked.in_channels, y.shape[1] - self.chunked.in_channels], dim=1)
        y = torch.cat([q, self.chunked(p)], dim=1)  # the order swaps the parts: offsets matter
        return self.head(y.mean((2, 3)))


class SharedConv(nn.Module):
    """One conv used at two places (weights shared) and a tied pair of linears."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(3, 16, 3, padding=1)
        self.shared = nn.Conv2d(16, 32, 3, padding=1)
        self.back = nn.Conv2d(32, 16, 1)
        self.fc_a = nn.Linear(32, 32)
        self.fc_b = nn.Linear(32, 32)
        self.fc_b.weight = self.fc_a.weight  # tied
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inp(x))
        x = self.back(torch.relu(self.shared(x))) + x
        x = torch.relu(self.shared(x)).mean((2, 3))
        return self.head(self.fc_b(torch.relu(self.fc_a(x))))


INPUT_SIDE_DIM = 1


def _randomize(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval()


def dead_channels_hold(model: nn.Module, example: torch.Tensor, grouping, group, dead: list[int]) -> bool:
    """True when slicing out dead channels of ``group`` leaves the outputs unchanged."""
    keep = {group.atom: [i for i in range(group.width) if i not in dead]}
    original = copy.deepcopy(model)
    with torch.no_grad():
        for member in group.members:
            if not member.is_param or (member.tensor in grouping.prop.weight_params and member.dim == INPUT_SIDE_DIM):
                continue
            kept = set(member.tree.kept_indices(keep))
            dead_idx = [i for i in range(member.tree.size) if i not in kept]
            original.get_parameter(member.tensor).index_fill_(member.dim, torch.tensor(dead_idx), 0.0)
        expected = original(example)
    pruned = copy.deepcopy(original)
    try:
        apply_keep(pruned, grouping, {group.id: [i for i in range(group.width) if i not in dead]})
        with torch.no_grad():
            actual = pruned(example)
    except Exception:  # a wrong index map can also break shapes
        return False
    return actual.shape == expected.shape and torch.allclose(actual, expected, rtol=1e-4, atol=1e-5)


def _all_groups_hold(model, example) -> list[bool]:
    grouping = analyze(model, example)
    results = []
    for group in grouping.groups:
        dead = sorted({0, group.width // 2, group.width - 1})
        if len(dead) < group.width:
            results.append(dead_channels_hold(model, example, grouping, group, dead))
    return results


@pytest.fixture(scope="module")
def concat_model():
    torch.manual_seed(0)
    return _randomize(SplitBranchesCat()), torch.randn(2, 3, 8, 8)


def test_concat_split_chunk_and_grouped_conv_slice_exactly(concat_model):
    model, example = concat_model
    grouping = analyze(model, example)
    assert len(grouping.groups) >= 5  # stem parts, right hidden, fuse halves, grouped-conv groups …
    held = _all_groups_hold(model, example)
    assert held and all(held)


def test_shared_module_and_tied_weights_are_one_unit(tmp_path):
    torch.manual_seed(0)
    model, example = _randomize(SharedConv()), torch.randn(2, 3, 8, 8)
    held = _all_groups_hold(model, example)
    assert held and all(held)
    import isodeploy

    result = isodeploy.prune(model, example, ratio=0.5, round_to=1)
    pruned = result.model
    assert pruned.fc_a.weight is pruned.fc_b.weight and pruned.fc_a.weight.shape[0] < 32
    assert pruned.shared.out_channels < 32 and not result.frozen
    isodeploy.save(result, tmp_path / "shared")
    reloaded = isodeploy.load(tmp_path / "shared", model=SharedConv())
    assert reloaded.fc_a.weight is reloaded.fc_b.weight
    with torch.no_grad():
        assert torch.equal(reloaded(example), pruned(example))


def test_mobilevit_fusion_slices_exactly():
    model = randomize_norms(make_model("mobilevit_xxs"))
    example = torch.randn(2, 3, 64, 64)
    grouping = analyze(model, example)
    fused = [g for g in grouping.groups if any(".conv_fusion." in p for p in g.params)]
    assert fused, "MobileViT's fusion conv joins no group"
    for group in fused[:2]:
        assert dead_channels_hold(model, example, grouping, group, [0, 3, group.width - 1])


def _swapped_cat(prop, node):
    """The planted bug: the cat rule wired with its parts in reverse order."""
    from isodeploy.graph.ops.core import _val_shape

    tensors = [t for t in node.args[0] if prop.dims_of(t) is not None]
    axis = shape_rules._norm_dim(shape_rules._arg(node, 1, "dim", 0), len(_val_shape(node)))
    out = [list(d) for d in prop.dims_of(tensors[0])]
    for t in tensors[1:]:
        for i, d in enumerate(prop.dims_of(t)):
            if i != axis:
                prop.unify(node, out[i], d)
    if len(tensors) == 1:
        return out
    sizes = [_val_shape(t)[axis] for t in tensors][::-1]
    whole, parts = prop.atoms.new_sum(sizes)
    for part, t in zip(parts, tensors[::-1]):  # right sizes, wrong offsets: consistent but wrong
        prop.unify(node, [part], prop.dims_of(t)[axis])
    out[axis] = [whole]
    return out


def test_a_swapped_cat_rule_is_caught(concat_model, monkeypatch):
    model, example = concat_model
    spec = TABLE.lookup(OpTable.resolve("cat"))
    monkeypatch.setattr(spec, "rule", _swapped_cat)
    held = _all_groups_hold(model, example)
    assert held and not all(held), "reversing the cat wiring went unnoticed"


def test_a_dropped_index_map_is_caught(concat_model, monkeypatch):
    model, example = concat_model
    real = apply_mod.slice_tensors

    def drop_one(model_, grouping, keep_by_atom):
        trees = dict(grouping.trees)
        victim = next(k for k, t in trees.items() if keep_by_atom.keys() & set(t.leaves()) and k[0].endswith(".bias"))
        del grouping.trees[victim]
        try:
            return real(model_, grouping, keep_by_atom)
        finally:
            grouping.trees.clear()
            grouping.trees.update(trees)

    monkeypatch.setattr(apply_mod, "slice_tensors", drop_one)
    held = _all_groups_hold(model, example)
    assert held and not all(held), "a member dim left unsliced went unnoticed"
