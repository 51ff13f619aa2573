"""Prune-and-forward over a zoo: for every group remove one channel (one head for head groups), fix
the module attributes, and the model must still run; with one channel gone from every group at
once it must also still export. Missing rules are the most dangerous bug class (docs/grouper.md)."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import SMALL_ZOO
from isodeploy.graph.trace import trace
from isodeploy.pruning.apply import apply_keep


@pytest.mark.parametrize("key", list(SMALL_ZOO))
def test_every_group_prunes_and_forwards(grouped, key):
    model, example, grouping = grouped(key)
    pristine = copy.deepcopy(model)
    with torch.no_grad():
        reference = model(example)
    assert grouping.unsupported == [], f"ops without rules in {key}: {grouping.unsupported}"
    assert len(grouping.groups) >= 4
    failures = []
    for group in grouping.groups:
        pruned = copy.deepcopy(pristine)
        drop = group.width // 2  # a channel in the middle: index maps matter
        try:
            apply_keep(pruned, grouping, {group.id: [i for i in range(group.width) if i != drop]})
            with torch.no_grad():
                out = pruned(example)
            assert out.shape == reference.shape
        except Exception as exc:  # collect all failures, one line each
            failures.append(f"group {group.id} ({group.kind}, {group.params[0]}): {type(exc).__name__}: {exc}")
    assert failures == []

    everything = copy.deepcopy(pristine)
    apply_keep(everything, grouping, {g.id: list(range(1, g.width)) for g in grouping.groups})
    with torch.no_grad():
        assert everything(example).shape == reference.shape
    traced = trace(everything, example)
    assert traced.exported.module()(example).shape == reference.shape
    # the parameter count really went down
    assert sum(p.numel() for p in everything.parameters()) < sum(p.numel() for p in pristine.parameters())
