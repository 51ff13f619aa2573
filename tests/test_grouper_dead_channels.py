"""Index maps are right, not only shapes: channels made dead in the original model can be sliced out
physically and the outputs do not change (to float tolerance)."""

from __future__ import annotations

import copy

import pytest
import torch

from isodeploy.pruning.apply import apply_keep

# Input-side dims of Linear/Conv weights read the group's channels; every other member dim produces
# them (output rows, biases, norm affine params, biases tables): zeroing those makes the channels dead.
INPUT_SIDE_DIM = 1


def make_dead(model, grouping, group, dead: list[int]) -> None:
    keep = {group.atom: [i for i in range(group.width) if i not in dead]}
    with torch.no_grad():
        for member in group.members:
            if not member.is_param:
                continue
            if member.tensor in grouping.prop.weight_params and member.dim == INPUT_SIDE_DIM:
                continue
            kept = set(member.tree.kept_indices(keep))
            dead_idx = [i for i in range(member.tree.size) if i not in kept]
            tensor = model.get_parameter(member.tensor)
            tensor.index_fill_(member.dim, torch.tensor(dead_idx), 0.0)


def _find_group(grouping, kind, param_label):
    for group in grouping.groups:
        if group.kind == kind and param_label in group.params:
            return group
    raise AssertionError(f"no {kind} group holds {param_label}")


CASES = [
    ("deit", "hidden", "blocks.1.mlp.fc1.weight:0", [0, 5, 17, 700]),            # MLP hidden channels
    ("deit", "heads", "blocks.0.attn.qkv.weight:0", [1]),                         # a whole head
    ("deit", "head_dim", "blocks.1.attn.qkv.weight:0", [3, 40, 63]),              # head-dim slice of every head
    ("swin", "heads", "layers.2.blocks.1.attn.qkv.weight:0", [2, 7]),             # heads with relative-position bias
    ("resnet", "hidden", "layer2.1.conv1.weight:0", [0, 9, 100]),                 # bottleneck inner width
    ("mobilenetv2", "hidden", "blocks.3.1.conv_pw.weight:0", [1, 2, 50]),        # depthwise expansion
    ("regnety", "hidden", "s2.b1.se.fc1.weight:0", [0, 3]),                       # SE reduction
    ("convnext", "hidden", "stages.1.blocks.0.mlp.fc1.weight:0", [4, 99]),        # ConvNeXt MLP (1x1 convs)
]


@pytest.mark.parametrize("key,kind,param,dead", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_dead_channels_slice_out_exactly(grouped, key, kind, param, dead):
    model, example, grouping = grouped(key)
    group = _find_group(grouping, kind, param)
    original = copy.deepcopy(model)
    make_dead(original, grouping, group, dead)
    with torch.no_grad():
        expected = original(example)
    pruned = copy.deepcopy(original)
    apply_keep(pruned, grouping, {group.id: [i for i in range(group.width) if i not in dead]})
    with torch.no_grad():
        actual = pruned(example)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    # the sliced parameter really shrank
    assert pruned.get_parameter(param.split(":")[0]).shape != model.get_parameter(param.split(":")[0]).shape


def test_removing_live_channels_does_change_outputs(grouped):
    """Control: the same slicing without making the channels dead must change the outputs,
    so the test above can fail."""
    model, example, grouping = grouped("deit")
    group = _find_group(grouping, "hidden", "blocks.1.mlp.fc1.weight:0")
    pruned = copy.deepcopy(model)
    apply_keep(pruned, grouping, {group.id: [i for i in range(group.width) if i not in (0, 5, 17)]})
    with torch.no_grad():
        assert not torch.allclose(pruned(example), model(example), atol=1e-5)


def test_wrong_index_map_is_detected(grouped):
    """Control: dead channels sliced at the wrong indices (off by one) change the outputs."""
    model, example, grouping = grouped("deit")
    group = _find_group(grouping, "head_dim", "blocks.1.attn.qkv.weight:0")
    original = copy.deepcopy(model)
    make_dead(original, grouping, group, [3, 40])
    pruned = copy.deepcopy(original)
    apply_keep(pruned, grouping, {group.id: [i for i in range(group.width) if i not in (4, 41)]})
    with torch.no_grad():
        assert not torch.allclose(pruned(example), original(example), atol=1e-4)
