"""The uniform twin: same MACs as the pruned model (±1 %, the planner's and the counter's formula agree),
same depth, one shared ratio, aligned widths — for a ViT, a ResNet and a ConvNeXt."""

from __future__ import annotations

import pytest

from isodeploy.benchmarking.macs import count_macs
from isodeploy.benchmarking.twin import make_twin, misaligned_head_dims, standard_model
from isodeploy.pruning.pruner import prune_model
from isodeploy.pruning.plan import PruneConfig
from isodeploy.loading import load_model

CASES = {
    "vit": ("deit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 2}),
    "resnet": ("resnet18", {"img_size": 64}),
    "convnext": ("convnext_atto", {"img_size": 64}),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_twin_has_the_pruned_macs_and_uniform_widths(family: str) -> None:
    name, kwargs = CASES[family]
    kwargs = dict(kwargs)
    dense = load_model(name, weights="random", img_size=kwargs.pop("img_size"), **kwargs)
    pruned = prune_model(dense, PruneConfig(ratio=0.3))  # isomorphic ranking: non-uniform widths
    twin, info = make_twin(dense, pruned.plan.macs_after)
    counted = count_macs(twin.loaded.model, twin.loaded.example_input(2)).macs
    target = count_macs(pruned.loaded.model, pruned.loaded.example_input(2)).macs
    assert counted == info.macs  # the planner's cost is the counter's
    assert abs(counted / target - 1) <= 0.01
    assert twin.config.ranking == "local" and 0 < info.ratio < 1
    assert len(list(twin.loaded.model.modules())) == len(list(dense.model.modules()))  # same depth
    for c in info.classes:  # one ratio for every class: each class keeps about the same fraction
        kept = c["width_after"] / c["width_before"]
        if c["kind"] != "heads":
            assert abs(kept - (1 - info.ratio)) < 0.2, c
    if family == "vit":
        dims = info.head_dims
        assert dims and len(set(dims)) == 1 and dims[0] % 8 == 0 and dims[0] >= 16  # same head dim in every block
        for c in info.classes:
            assert len(set(c["widths_after"])) == 1, c  # same widths in every block
        assert misaligned_head_dims(info.classes) == []
    else:
        assert info.head_dims == []


def test_misaligned_head_dims_are_found() -> None:
    classes = [{"kind": "head_dim", "widths_after": [64, 60, 64, 52]}, {"kind": "hidden", "widths_after": [100]}]
    assert misaligned_head_dims(classes) == [52, 60]


def test_standard_model_of_about_that_size() -> None:
    assert standard_model("deit_base_patch16_224", 4_188_255_504) == ("deit_small_patch16_224", 4.60e9)
    assert standard_model("deit_base_patch16_224", 4_188_255_504, default_size=False) is None
    assert standard_model("deit_base_patch16_224", 9e9) is None
    assert standard_model("convnext_atto", 1e8) is None
