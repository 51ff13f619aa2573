"""Pruned models (from the pruning API) export and verify like dense ones; skipped when pruning is absent."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from isodeploy.cli import main
from isodeploy.core.inputs import random_samples, to_batches
from isodeploy.export.onnx import export_onnx
from isodeploy.export.runners import OrtRunner, TorchRunner
from isodeploy.export.verify import Gates, verify
from isodeploy.loading import load_model

torch.set_num_threads(1)

api = pytest.importorskip("isodeploy.pruning.pruner", reason="pruning (isodeploy.pruning.pruner) is not in this checkout")
if not hasattr(api, "config_from_recipe"):
    pytest.skip("isodeploy.pruning.pruner has no config_from_recipe (API changed?)", allow_module_level=True)

CASES = {
    "deit": ("deit_tiny_patch16_224", dict(img_size=32, patch_size=8, depth=2), "deit-0.6g"),
    "resnet": ("resnet18", dict(img_size=64), "cnn-0.25"),
    "swin": ("swin_tiny_patch4_window7_224", dict(img_size=64, window_size=4, depths=(1, 1, 1, 1)), "swin-0.47"),
}


def _prune(case: str):
    name, kwargs, recipe = CASES[case]
    dense = load_model(name, weights="random", **kwargs)
    return dense, api.prune_model(dense, api.config_from_recipe(recipe, {}))


@pytest.mark.parametrize("case", sorted(CASES))
def test_pruned_model_exports_and_verifies_at_batch_1_and_7(case, tmp_path):
    dense, result = _prune(case)
    pruned = result.loaded
    dense_params = sum(p.numel() for p in dense.model.parameters())
    assert sum(p.numel() for p in pruned.model.parameters()) < dense_params  # it really is smaller
    report = export_onnx(pruned, tmp_path / "pruned.onnx")
    assert report.input_shape[0] == "batch"
    check = verify(OrtRunner(report.path, threads=1), TorchRunner(pruned.model),
                   to_batches(random_samples(7, pruned.input_size), [1, 7]), Gates.fp32())
    assert check.passed, check.failures
    assert check.batch_sizes == [1, 7]


def test_isodeploy_folder_round_trip_through_the_cli(tmp_path):
    """prune → folder → `export DIR` → `verify DIR/model.onnx` with the reference rebuilt from metadata."""
    _, result = _prune("deit")
    folder = tmp_path / "pruned"
    api.save_pruned(result, folder)
    out = tmp_path / "v.json"
    assert main(["export", str(folder)]) == 0
    onnx_path = folder / "model.onnx"
    meta = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    assert meta["isodeploy.spec_hash"].startswith("sha256:")  # pruned: the spec is recorded
    assert meta["isodeploy.source_folder"] == folder.name and "isodeploy.source_model" not in meta  # a name, never a path
    assert main(["verify", str(onnx_path), "--inputs", "3", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["passed"] is True
