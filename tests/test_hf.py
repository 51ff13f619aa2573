"""Hugging Face transformers vision models as a source (``hf:TYPE``, ``hf:org/name``): built from a
small config, pruned with every class (heads, head dims, MLP, embedding), saved, reloaded in a fresh
process without pickle, exported and verified."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

import isodeploy  # noqa: E402
from isodeploy.cli import main  # noqa: E402
from isodeploy.core.errors import IsodeployError  # noqa: E402

TINY_VIT = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                num_labels=10)


def _tiny(kind: str = "vit", **extra):
    return isodeploy.create_model(f"hf:{kind}", weights="random", **{**TINY_VIT, **extra})


def test_an_hf_vit_prunes_every_class_and_reloads_in_a_fresh_process(tmp_path):
    model = _tiny()
    x = isodeploy.example_inputs(model)
    result = isodeploy.prune(model, x, ratios={"embedding": 0.25, "heads": 0.25, "head_dim": 0.5, "hidden": 0.3}, round_to=1)
    kinds = {c["kind"]: c for c in result.spec["classes"]}
    assert set(kinds) >= {"embedding", "heads", "head_dim", "hidden"}
    assert not result.spec["frozen_classes"], result.spec["frozen_classes"]
    assert all(c["width_after"] < c["width_before"] for c in kinds.values())
    attention = [m for m in result.spec["modules"] if m["module"].endswith(".attention")]
    assert attention and all("head_dim" in m["attrs"] or "attention_head_size" in m["attrs"] for m in attention)
    isodeploy.save(result, tmp_path / "p")
    spec = json.loads((tmp_path / "p" / "isodeploy.json").read_text())
    assert spec["source"]["kind"] == "hf" and spec["source"]["name"] == "vit"
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = result.model(x)
    code = (f"import torch, isodeploy\nm = isodeploy.load({str(tmp_path / 'p')!r})\nx = torch.load({str(tmp_path / 'x.pt')!r})\n"
            f"torch.save(m(x).detach(), {str(tmp_path / 'y.pt')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert torch.allclose(torch.load(tmp_path / "y.pt"), expected, atol=1e-5)


def test_an_hf_model_exports_and_verifies(tmp_path):
    model = _tiny()
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.3)
    isodeploy.save(result, tmp_path / "p")
    pruned = isodeploy.load(tmp_path / "p")
    isodeploy.export_onnx(pruned, tmp_path / "p" / "model.onnx")
    report = isodeploy.verify(tmp_path / "p" / "model.onnx", reference=pruned, samples=4)
    assert report.passed, report.failures


def test_a_model_type_listing_two_heads_builds_its_plain_head():
    """DeiT lists a plain head and a distillation head; AutoModel's from_config fails on that tuple."""
    model = _tiny("deit")
    assert type(model.model).__name__ == "DeiTForImageClassification"
    assert model(isodeploy.example_inputs(model)).shape == (2, 10)


def test_img_size_maps_to_the_config_s_image_size():
    model = isodeploy.create_model("hf:vit", weights="random", img_size=48, **{k: v for k, v in TINY_VIT.items() if k != "image_size"})
    assert model.model.config.image_size == 48 and model.pretrained_cfg["input_size"] == (3, 48, 48)


@pytest.mark.parametrize("name,needle", [
    ("hf:vitt", "is not a transformers model type with an image-classification head. Did you mean: hf:vit"),
    ("hf:", "hf: needs a model type or a hub id"),
])
def test_an_unknown_hf_name_is_one_line(name, needle, tmp_path, capsys):
    assert main(["prune", name, "--weights", "random", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and not (tmp_path / "o").exists()


def test_a_model_type_has_no_pretrained_weights_of_its_own():
    with pytest.raises(IsodeployError, match="has no pretrained weights of its own"):
        isodeploy.create_model("hf:vit", weights="pretrained", **TINY_VIT)


def test_transformers_missing_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # the import system's own "not installed"
    with pytest.raises(IsodeployError, match=r"pip install -e '\.\[hf\]'"):
        isodeploy.create_model("hf:vit", weights="random")


@pytest.mark.parametrize("edit,needle", [
    (lambda s: s["source"]["kwargs"].update(hidden_size=10**6), "'hidden_size' = 1000000 is out of bounds"),
    (lambda s: s["source"]["kwargs"].update(trust_remote_code=True), "'trust_remote_code' may not come from a file"),
    (lambda s: s["source"].update(name="../../etc"), "is not a transformers model type or hub id"),
])
def test_an_edited_hf_spec_is_refused(tmp_path, capsys, edit, needle):
    model = _tiny()
    isodeploy.save(isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.2), tmp_path / "p")
    path = tmp_path / "p" / "isodeploy.json"
    spec = json.loads(path.read_text())
    edit(spec)
    path.write_text(json.dumps(spec))
    assert main(["export", str(tmp_path / "p"), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert needle in err and not Path(tmp_path / "x.onnx").exists()


def test_attention_in_a_submodule_named_self_is_found_and_pruned():
    """transformers' older attention lives at ``attention.self``: the module path must keep that part
    (it used to be dropped as the root's name, so the fix-ups never saw the attention)."""
    from isodeploy.graph.trace import _normalise_path

    assert _normalise_path("L['self'].encoder.attention.self") == "encoder.attention.self"
    assert _normalise_path("self.blocks.0.attn") == "blocks.0.attn"
    model = isodeploy.create_model("hf:donut-swin", weights="random", depths=[1, 1, 1, 1], embed_dim=32, num_heads=[2, 2, 4, 4])
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.3, round_to=1)
    frozen = {c["kind"]: c["frozen"] for c in result.spec["classes"] if c["kind"] in ("heads", "head_dim")}
    assert frozen and not any(frozen.values()), frozen
    assert any(m["module"].endswith("attention.self") and "attention_head_size" in m["attrs"] for m in result.spec["modules"])


TINY_BIT = dict(image_size=32, embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1], num_groups=8, num_labels=10)


def _pruned_bit(tmp_path):
    model = isodeploy.create_model("hf:bit", weights="random", **TINY_BIT)
    x = isodeploy.example_inputs(model)
    result = isodeploy.prune(model, x, ratio=0.3, round_to=8)
    isodeploy.save(result, tmp_path / "p")
    return result, x


def test_hf_bit_bakes_its_weight_standardisation_and_reloads_in_a_fresh_process(tmp_path):
    """BiT's WeightStandardizedConv2d has no gain: with the standardisation baked its fan-in is cut too
    (97 % of MACs stayed before), the spec notes it, and a fresh process rebuilds the baked classes."""
    result, x = _pruned_bit(tmp_path)
    assert not result.spec["frozen_classes"], result.spec["frozen_classes"]
    assert result.plan.macs_after < 0.75 * result.plan.macs_before
    baked = [m["module"] for m in result.spec["modules"] if m.get("notes", {}).get("standardisation") == "baked"]
    assert baked
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = result.model(x)
    code = (f"import torch, isodeploy\nm = isodeploy.load({str(tmp_path / 'p')!r})\nx = torch.load({str(tmp_path / 'x.pt')!r})\n"
            f"assert type(m.get_submodule({baked[0]!r})).__name__ == 'BakedWeightStandardizedConv2d'\n"
            f"torch.save(m(x).detach(), {str(tmp_path / 'y.pt')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert torch.allclose(torch.load(tmp_path / "y.pt"), expected, atol=1e-5)
    isodeploy.export_onnx(result.model, tmp_path / "m.onnx")
    assert isodeploy.verify(tmp_path / "m.onnx", reference=result.model, samples=4).passed


@pytest.mark.parametrize("edit,needle", [
    (lambda entry, other: entry.update(notes={"standardisation": "raw"}), "not 'baked'"),
    (lambda entry, other: other.update(notes={"standardisation": "baked"}), "which has none to bake"),
])
def test_an_edited_bake_note_is_refused(tmp_path, capsys, edit, needle):
    _pruned_bit(tmp_path)
    path = tmp_path / "p" / "isodeploy.json"
    spec = json.loads(path.read_text())
    entry = next(m for m in spec["modules"] if m.get("notes", {}).get("standardisation") == "baked")
    other = next(m for m in spec["modules"] if "norm" in m["module"])  # a GroupNorm: nothing to bake
    edit(entry, other)
    path.write_text(json.dumps(spec))
    assert main(["export", str(tmp_path / "p"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


def test_a_model_whose_source_a_reload_would_refuse_is_not_saved(tmp_path):
    """A config field outside the file allow-list made a folder that load then refused: save says so first."""
    model = _tiny(layer_norm_eps=1e-5)
    result = isodeploy.prune(model, isodeploy.example_inputs(model), ratio=0.2)
    with pytest.raises(IsodeployError, match="cannot save: .*'layer_norm_eps' may not come from a file"):
        isodeploy.save(result, tmp_path / "p")
    assert not (tmp_path / "p" / "isodeploy.json").exists()


def test_hf_pvt_ties_its_sequence_reduction_and_patch_embeddings(tmp_path):
    """PVT reshapes the sequence reduction's output with the input's width and checks each stage's input
    channels against ``patch_embeddings.num_channels``: both follow the pruned width (it froze the embedding
    and hidden classes before, 47 % of MACs kept), and the folder reloads."""
    model = isodeploy.create_model("hf:pvt", weights="random", image_size=64, depths=[1, 1, 1, 1], num_labels=10)
    x = isodeploy.example_inputs(model)
    result = isodeploy.prune(model, x, ratio=0.3)
    assert not result.frozen, [f.reason for f in result.frozen]
    assert result.plan.macs_after < 0.5 * result.plan.macs_before
    assert any("num_channels" in m["attrs"] for m in result.spec["modules"] if m["module"].endswith("patch_embeddings.1"))
    isodeploy.save(result, tmp_path / "p")
    with torch.no_grad():
        assert torch.allclose(isodeploy.load(tmp_path / "p")(x), result.model(x), atol=1e-5)
