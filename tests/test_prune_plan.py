"""Pruning engine: the paper's recipes, ranking modes, rounding, MAC counting, dead channels."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import make_model, randomize_norms
from isodeploy.benchmarking.macs import count_macs
from isodeploy.core.errors import IsodeployError
from isodeploy.graph.analysis import analyze
from isodeploy.pruning.apply import apply_keep
from isodeploy.pruning.importance import magnitude
from isodeploy.pruning.plan import PruneConfig, make_plan

# The paper's Table 2 (Fang et al. 2024; README, Pruning): source, (embed, mlp, heads, head-dim), MACs G, params M.
PAPER = [
    ("deit_base_distilled_patch16_224", (0.5, 0.5, 0.5, 0.25), 4.16, 20.69),
    ("deit_base_distilled_patch16_224", (0.6, 0.6, 0.6, 0.3), 2.62, 13.07),
    ("deit_small_distilled_patch16_224", (0.5, 0.5, 0.5, 0.1), 1.21, 5.74),
    ("deit_tiny_distilled_patch16_224", (0.25, 0.25, 0.3, 0.3), 0.62, 3.08),
]
_ANALYZED: dict = {}


def _analyzed(name):
    if name not in _ANALYZED:
        model = make_model(name)
        grouping = analyze(model, torch.randn(2, 3, 224, 224), name=name)
        _ANALYZED[name] = (model, grouping, magnitude(model, grouping))
    return _ANALYZED[name]


@pytest.mark.parametrize("name,ratios,macs_g,params_m", PAPER, ids=["4.2G", "2.6G", "1.2G", "0.6G"])
def test_paper_recipes_land_near_the_paper(name, ratios, macs_g, params_m, capsys):
    _, grouping, scores = _analyzed(name)
    embed, mlp, heads, head_dim = ratios
    cfg = PruneConfig(embed_ratio=embed, mlp_ratio=mlp, head_ratio=heads, head_dim_ratio=head_dim, round_to=2)
    plan = make_plan(grouping, scores, cfg)
    with capsys.disabled():
        print(f"\n{name} {ratios}: ours {plan.macs_after / 1e9:.3f} G / {plan.params_after / 1e6:.2f} M, "
              f"paper {macs_g} G / {params_m} M")
    # Params land within 2 % of the paper. MACs within 4 %: they depend on which blocks keep more heads
    # *and* more head dims, which random weights decide differently from the paper's pretrained Taylor
    # run; DeiT-2.6G is 2.9 % high even with uniform (local) widths. benchmarks/prune.py prints the table.
    assert abs(plan.params_after / 1e6 - params_m) / params_m < 0.02
    assert abs(plan.macs_after / 1e9 - macs_g) / macs_g < 0.04


def test_plan_cost_matches_the_mac_counter_on_the_pruned_model():
    model, grouping, scores = _analyzed("deit_tiny_distilled_patch16_224")
    plan = make_plan(grouping, scores, PruneConfig(ratio=0.4, round_to=8))
    pruned = copy.deepcopy(model)
    apply_keep(pruned, grouping, plan.keep)
    report = count_macs(pruned, torch.randn(2, 3, 224, 224))
    assert report.macs == plan.macs_after
    assert report.params == plan.params_after
    assert count_macs(model, torch.randn(2, 3, 224, 224)).macs == plan.macs_before


def test_round_to_8_aligns_every_width():
    for name, size in (("deit_small_patch16_224", 64), ("resnet50", 64)):
        kwargs = {"img_size": size} if "deit" in name else {}
        model = make_model(name, **kwargs)
        grouping = analyze(model, torch.randn(2, 3, size, size), name=name)
        plan = make_plan(grouping, magnitude(model, grouping), PruneConfig(ratio=0.37, round_to=8))
        apply_keep(model, grouping, plan.keep)
        for mname, module in model.named_modules():
            if isinstance(module, nn.Linear):
                assert module.in_features % 8 == 0 and module.out_features % 8 == 0, mname
            if isinstance(module, nn.Conv2d) and module.in_channels != 3:
                assert module.in_channels % 8 == 0 and module.out_channels % 8 == 0, mname
            if hasattr(module, "head_dim") and hasattr(module, "num_heads"):
                assert module.head_dim % 8 == 0 and module.head_dim >= 16, mname


@pytest.fixture(scope="module")
def small_vit():
    model = randomize_norms(make_model("deit_small_patch16_224", img_size=32, patch_size=8, depth=4))
    grouping = analyze(model, torch.randn(2, 3, 32, 32), name="small")
    return model, grouping, magnitude(model, grouping)


def _removed_and_kept(grouping, scores, plan, group_ids):
    removed, kept = [], []
    for gid in group_ids:
        keep = set(plan.keep.get(gid, range(grouping.groups[gid].width)))
        for i, value in enumerate(scores[gid].tolist()):
            (kept if i in keep else removed).append(value)
    return removed, kept


def test_isomorphic_ranks_within_each_class_only(small_vit):
    _, grouping, scores = small_vit
    plan = make_plan(grouping, scores, PruneConfig(ratio=0.3, round_to=1))
    for iso in grouping.classes:
        total = sum(grouping.groups[g].width for g in iso.group_ids)
        after = sum(plan.widths_after[g] for g in iso.group_ids)
        assert total - after == round(0.3 * total)  # each class removes its own ratio
        removed, kept = _removed_and_kept(grouping, scores, plan, iso.group_ids)
        assert max(removed) <= min(kept)  # the lowest of the class go, whatever block they are in
    hidden = [plan.widths_after[g.id] for g in grouping.groups if g.kind == "hidden"]
    assert len(set(hidden)) > 1  # non-uniform widths across blocks


def test_global_ranks_all_channels_together(small_vit):
    _, grouping, scores = small_vit
    iso = make_plan(grouping, scores, PruneConfig(ratio=0.3, round_to=1))
    glob = make_plan(grouping, scores, PruneConfig(ratio=0.3, round_to=1, ranking="global", max_group_ratio=0.99))
    all_ids = [g.id for g in grouping.groups]
    removed, kept = _removed_and_kept(grouping, scores, glob, all_ids)
    floors = [gid for gid in all_ids if glob.widths_after[gid] == 1]
    if not floors:
        assert max(removed) <= min(kept)
    assert sum(glob.widths_after.values()) == sum(iso.widths_after.values())  # same number removed
    by_kind = lambda plan, kind: sum(plan.widths_after[g.id] for g in grouping.groups if g.kind == kind)  # noqa: E731
    assert any(by_kind(glob, k) != by_kind(iso, k) for k in ("embedding", "hidden", "heads", "head_dim"))


def test_local_prunes_every_group_by_the_same_fraction(small_vit):
    _, grouping, scores = small_vit
    plan = make_plan(grouping, scores, PruneConfig(ratio=0.3, round_to=1, ranking="local"))
    for group in grouping.groups:
        assert plan.widths_after[group.id] == group.width - round(0.3 * group.width)
        removed, kept = _removed_and_kept(grouping, scores, plan, [group.id])
        assert max(removed) <= min(kept)


def test_dead_channels_are_exactly_what_magnitude_removes(small_vit):
    from test_grouper_dead_channels import make_dead

    model, grouping, _ = small_vit
    target = next(g for g in grouping.groups if g.kind == "hidden" and "blocks.2.mlp.fc1.weight:0" in g.params)
    hidden_total = sum(g.width for g in grouping.groups if g.kind == "hidden")
    dead = [3, 77, 150, 600, 1000]
    dead_model = copy.deepcopy(model)
    make_dead(dead_model, grouping, target, dead)
    scores = magnitude(dead_model, grouping)
    plan = make_plan(grouping, scores, PruneConfig(mlp_ratio=len(dead) / hidden_total, round_to=1))
    assert set(plan.keep) == {target.id}
    assert sorted(set(range(target.width)) - set(plan.keep[target.id])) == dead
    pruned = copy.deepcopy(dead_model)
    apply_keep(pruned, grouping, plan.keep)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), dead_model(x), rtol=1e-4, atol=1e-5)


def test_target_macs_lands_within_one_percent(small_vit):
    _, grouping, scores = small_vit
    dense = make_plan(grouping, scores, PruneConfig(ratio=0.0)).macs_before
    plan = make_plan(grouping, scores, PruneConfig(target_macs=0.5 * dense, round_to=8))
    assert abs(plan.macs_after - 0.5 * dense) <= 0.01 * 0.5 * dense


@pytest.mark.parametrize(
    "cfg,message",
    [
        (PruneConfig(ratio=1.0), "must be in [0, 1)"),
        (PruneConfig(ratio=-0.1), "must be in [0, 1)"),
        (PruneConfig(ratio=0.95, ranking="local"), "would remove"),
        (PruneConfig(mlp_ratio=0.95, max_group_ratio=0.5), "floor"),
        (PruneConfig(target_macs=1.0), "unreachable"),
        (PruneConfig(target_macs=1e15), "not below"),
        (PruneConfig(ratio=0.3, ranking="best"), "ranking= must be one of"),  # the API's name; the CLI shows --ranking
    ],
)
def test_bad_recipes_are_clear_errors(small_vit, cfg, message):
    _, grouping, scores = small_vit
    with pytest.raises(IsodeployError, match=message.replace("[", r"\[").replace(")", r"\)")) as info:
        make_plan(grouping, scores, cfg)
    if "ranking" in message:
        assert info.value.for_cli().startswith("--ranking must be one of")
