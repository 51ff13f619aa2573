"""ONNX export: one clean, checked file per model that verifies at batch 1 and 7 (real timm models, small)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from isodeploy.core.errors import IsodeployError
from isodeploy.core.inputs import random_samples, to_batches
from isodeploy.export.onnx import export_onnx
from isodeploy.export.runners import OrtRunner, TorchRunner
from isodeploy.export.verify import Gates, verify
from isodeploy.loading import load_model

torch.set_num_threads(1)  # robust on a shared 2-core box

TINY_DEIT = dict(img_size=32, patch_size=8, depth=2)
# Small members of every family the issue names (DeiT, ResNet, ConvNeXt, MobileNetV2, Swin).
FAMILIES = {
    "deit": ("deit_tiny_patch16_224", TINY_DEIT),
    "resnet": ("resnet18", dict(img_size=64)),
    "convnext": ("convnext_atto", dict(img_size=64)),
    "mobilenetv2": ("mobilenetv2_050", dict(img_size=64)),
    "swin": ("swin_tiny_patch4_window7_224", dict(img_size=64, window_size=4, depths=(1, 1, 1, 1))),
}


@pytest.fixture(scope="module")
def tiny_deit():
    return load_model("deit_tiny_patch16_224", weights="random", **TINY_DEIT)


@pytest.fixture(scope="module")
def tiny_deit_onnx(tiny_deit, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "deit.onnx"
    return export_onnx(tiny_deit, out)


def _verify_1_and_7(path: Path, loaded) -> None:
    """Same file, batch 1 and batch 7, FP32 gates."""
    report = verify(OrtRunner(path, threads=1), TorchRunner(loaded.model), to_batches(random_samples(7, loaded.input_size), [1, 7]), Gates.fp32())
    assert report.batch_sizes == [1, 7]
    assert report.passed, report.failures
    assert report.outputs[0].max_abs < 1e-4
    assert set(report.outputs[0].max_abs_by_batch_size) == {"1", "7"}


def test_export_writes_a_clean_dynamic_batch_onnx(tiny_deit, tiny_deit_onnx):
    report = tiny_deit_onnx
    model = onnx.load(report.path)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    # opset 17: every LayerNorm (2 per block + the final norm) is one LayerNormalization node, never decomposed
    assert ops.count("LayerNormalization") == 2 * 2 + 1
    assert "ReduceMean" not in ops
    assert "Identity" not in ops  # graphsurgeon clean-up removed the exporter's Identity chains
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    assert report.input_shape == ["batch", 3, 32, 32]
    assert report.output_names == ["logits"] and report.output_shapes == [["batch", 1000]]
    assert report.exporter == "torchscript" and report.fallback is None
    assert not report.external_data and not Path(report.path + ".data").exists()
    # inferred shapes are stored, so every intermediate tensor has a type
    assert len(model.graph.value_info) > 0.8 * len(model.graph.node)


def test_export_metadata_records_provenance(tiny_deit_onnx):
    meta = {p.key: p.value for p in onnx.load(tiny_deit_onnx.path, load_external_data=False).metadata_props}
    assert meta["isodeploy.source_model"] == "deit_tiny_patch16_224"
    assert meta["isodeploy.weights"] == "random"
    assert json.loads(meta["isodeploy.input_size"]) == [3, 32, 32]
    assert json.loads(meta["isodeploy.mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(meta["isodeploy.std"]) == pytest.approx([0.229, 0.224, 0.225])
    assert json.loads(meta["isodeploy.create_kwargs"])["depth"] == 2
    assert meta["isodeploy.precision"] == "fp32"
    assert meta["isodeploy.version"]
    assert "isodeploy.spec_hash" not in meta  # dense models have no pruning spec
    assert tiny_deit_onnx.metadata == meta


def test_export_verifies_at_batch_1_and_7(tiny_deit, tiny_deit_onnx):
    _verify_1_and_7(Path(tiny_deit_onnx.path), tiny_deit)


@pytest.mark.parametrize("family", ["resnet", "convnext", "mobilenetv2", "swin"])
def test_every_family_exports_and_verifies(family, tmp_path):
    name, kwargs = FAMILIES[family]
    loaded = load_model(name, weights="random", **kwargs)
    report = export_onnx(loaded, tmp_path / f"{family}.onnx")
    assert report.input_shape[0] == "batch"
    _verify_1_and_7(tmp_path / f"{family}.onnx", loaded)


def test_non_uniform_widths_like_a_pruned_vit(tmp_path):
    """What isomorphic pruning produces: blocks with different head counts, head dims and MLP widths
    (head_dim 34, MLP 37). Built by hand so that this test does not depend on the pruning code."""
    from timm.layers import Mlp
    from timm.models.vision_transformer import Attention

    loaded = load_model("deit_tiny_patch16_224", weights="random", **TINY_DEIT)
    blocks = loaded.model.blocks
    torch.manual_seed(1)
    blocks[0].attn = Attention(192, num_heads=2, attn_head_dim=34, qkv_bias=True)
    blocks[0].mlp = Mlp(192, hidden_features=37)
    blocks[1].attn = Attention(192, num_heads=5, attn_head_dim=16, qkv_bias=True)
    loaded.model.eval()
    report = export_onnx(loaded, tmp_path / "pruned_like.onnx")
    shapes = {tuple(t.dims) for t in onnx.load(report.path).graph.initializer}
    assert (192, 3 * 2 * 34) in shapes or (3 * 2 * 34, 192) in shapes  # the narrowed qkv really is in the file
    _verify_1_and_7(tmp_path / "pruned_like.onnx", loaded)


@pytest.mark.slow
def test_dynamo_exporter_gives_the_same_numbers(tiny_deit, tmp_path):
    report = export_onnx(tiny_deit, tmp_path / "dynamo.onnx", exporter="dynamo")
    assert report.exporter == "dynamo"
    assert report.op_counts["LayerNormalization"] == 5
    _verify_1_and_7(tmp_path / "dynamo.onnx", tiny_deit)


def test_large_models_keep_weights_in_a_side_file(tiny_deit, tmp_path):
    """The >2 GB path, exercised with a 1 MB threshold: weights go to model.onnx.data and still load."""
    out = tmp_path / "big.onnx"
    report = export_onnx(tiny_deit, out, external_threshold=2**20)
    assert report.external_data
    data = tmp_path / "big.onnx.data"
    assert data.is_file() and data.stat().st_size > out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]  # no temp leftovers
    _verify_1_and_7(out, tiny_deit)


def test_static_batch_pins_the_batch(tiny_deit, tmp_path):
    report = export_onnx(tiny_deit, tmp_path / "static.onnx", dynamic_batch=False)
    assert report.input_shape == [1, 3, 32, 32]


@pytest.mark.parametrize("opset", [13, 16])
def test_opset_below_17_is_refused(tiny_deit, tmp_path, opset):
    with pytest.raises(IsodeployError, match=f"--opset {opset} is below 17"):
        export_onnx(tiny_deit, tmp_path / "x.onnx", opset=opset)
    assert not list(tmp_path.iterdir())


def test_unknown_exporter_is_refused(tiny_deit, tmp_path):
    with pytest.raises(IsodeployError, match="unknown exporter 'jit'"):
        export_onnx(tiny_deit, tmp_path / "x.onnx", exporter="jit")


def test_failed_export_leaves_nothing_behind(tmp_path):
    """A model no exporter can handle: one error naming both exporters, and no file or temp folder left."""
    from isodeploy.zoo import LoadedModel

    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x[x > 0].reshape(1, -1).sum(1, keepdim=True) if float(x.sum()) > 0 else x.mean().reshape(1, 1)

    loaded = LoadedModel(model=DataDependent(), timm_name="data_dependent", input_size=(3, 4, 4), weights="random")
    with pytest.raises(IsodeployError, match="ONNX export failed") as info:
        export_onnx(loaded, tmp_path / "x.onnx", exporter="dynamo")
    assert "dynamo exporter failed" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_onnx_output_matches_torch_exactly_enough_on_real_scale_inputs(tiny_deit, tiny_deit_onnx):
    """Not only gates: the raw arrays agree element for element."""
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    (out,) = OrtRunner(tiny_deit_onnx.path).run({"input": x})
    with torch.no_grad():
        ref = tiny_deit.model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-4)
