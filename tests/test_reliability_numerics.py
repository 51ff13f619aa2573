"""Numbers read from files are bounded, numerics cannot lie, and files choose nothing and leak nothing:
sizes in specs and ONNX metadata are capped and estimated before anything is allocated; NaN/inf fails
`verify` and refuses `prune`; a spec restores only what pruning changes; Constant-node external data
is checked like initializers; ONNX metadata never names a file for `verify` to load, nor the
producer's folders."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from reliability_check import TINY, assert_refused, exported, pruned, run, snapshot, tampered_copy  # noqa: F401 - fixtures

from isodeploy.cli import main


def _gemm_onnx(path: Path, weight: np.ndarray | None = None, *, constant_location: str | None = None) -> Path:
    """A tiny Flatten→Gemm classifier over 3×8×8 inputs; ``constant_location`` keeps the weight in a
    Constant node whose data lives in that external file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    weight = np.random.default_rng(0).standard_normal((10, 3 * 8 * 8)).astype(np.float32) if weight is None else weight
    tensor = numpy_helper.from_array(weight, "w")
    nodes = [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Gemm", ["flat", "w"], ["logits"], transB=1)]
    initializers = [tensor]
    if constant_location is not None:
        set_external_data(tensor, location=constant_location)
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        nodes.insert(0, helper.make_node("Constant", [], ["w"], name="const_w", value=tensor))
        initializers = []
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


# -- §3 bounded sizes from files ------------------------------------------------------------------------
def _set_kwarg(key, value):
    def edit(spec):
        for section in ("kwargs", "create_kwargs"):
            spec["source"].setdefault(section, {})[key] = value
    return edit


SIZE_TAMPERS = [
    ("num_classes two million", _set_kwarg("num_classes", 2_000_000), "'num_classes' = 2000000 is out of bounds"),
    ("num_classes eight million", _set_kwarg("num_classes", 8_000_000), "'num_classes' = 8000000 is out of bounds"),
    ("embed_dim huge", _set_kwarg("embed_dim", 10**6), "'embed_dim'"),
    ("depth huge", _set_kwarg("depth", 100_000), "'depth'"),
    ("img_size huge", _set_kwarg("img_size", 65536), "'img_size'"),
    ("mlp_ratio NaN", _set_kwarg("mlp_ratio", float("nan")), "'mlp_ratio'"),
    ("drop_rate negative", _set_kwarg("drop_rate", -1.0), "'drop_rate'"),
    ("input_size 8192", lambda s: s["source"].update(input_size=[3, 8192, 8192]), "input_size"),
]


@pytest.mark.parametrize("name,edit,needle", SIZE_TAMPERS, ids=[t[0] for t in SIZE_TAMPERS])
def test_sizes_from_a_spec_are_bounded(pruned, tmp_path, capsys, name, edit, needle):
    import time

    folder = tampered_copy(pruned, tmp_path, edit)
    before = snapshot(tmp_path)
    start = time.perf_counter()
    assert_refused(run(capsys, "export", folder, "-o", tmp_path / "x.onnx"), 2, needle)
    assert time.perf_counter() - start < 30  # refused up front, not after building or running anything big
    assert snapshot(tmp_path) == before


def test_a_model_within_bounds_but_beyond_memory_is_refused_before_it_is_built(pruned, tmp_path, capsys, monkeypatch):
    folder = tampered_copy(pruned, tmp_path, _set_kwarg("num_classes", 90_000))  # a 17 M-parameter head on a tiny ViT
    monkeypatch.setenv("ISODEPLOY_MEMORY_LIMIT_MB", "120")
    line = assert_refused(run(capsys, "export", folder, "-o", tmp_path / "x.onnx"), 2, "M parameters and needs at least")
    assert "deit_tiny_patch16_224" in line


def test_an_input_size_beyond_memory_is_refused_before_the_self_check(pruned, tmp_path, capsys, monkeypatch):
    folder = tampered_copy(pruned, tmp_path, lambda s: s["source"].update(input_size=[3, 2048, 2048]))
    monkeypatch.setenv("ISODEPLOY_MEMORY_LIMIT_MB", "1000")
    assert_refused(run(capsys, "export", folder, "-o", tmp_path / "x.onnx"), 2, "a forward pass at input 3×2048×2048 needs")


@pytest.mark.parametrize("values,needle", [
    ({"create_kwargs": json.dumps({"num_classes": 5_000_000})}, "'num_classes'"),
    ({"create_kwargs": json.dumps({"embed_dim": 10**7})}, "'embed_dim'"),
    ({"input_size": "[3, 8192, 8192]"}, "input_size"),
])
def test_sizes_from_onnx_metadata_are_bounded(dense_from_file, weights_file, tmp_path, capsys, values, needle):
    crafted = _edit_metadata(dense_from_file, tmp_path / "crafted.onnx", **values)
    assert_refused(run(capsys, "verify", crafted, "--weights", weights_file, "--inputs", "2"), 2, needle)


# -- §4 numerics that cannot lie ----------------------------------------------------------------------
@pytest.mark.parametrize("side", ["both", "candidate", "reference"])
def test_verify_fails_on_nan_on_either_side(tmp_path, capsys, side):
    good = _gemm_onnx(tmp_path / "good.onnx")
    nan = _gemm_onnx(tmp_path / "nan.onnx", np.full((10, 192), np.nan, np.float32))
    candidate, reference = {"both": (nan, nan), "candidate": (nan, good), "reference": (good, nan)}[side]
    line = assert_refused(run(capsys, "verify", candidate, "--reference", reference, "--inputs", "2"), 1, "NaN/inf")
    named = "the reference gives" if side != "candidate" else "the candidate gives"
    assert named in line and "sample 0 in batch 0" in line


def test_verify_fails_on_inf_in_the_reference_at_fp16_gates(tmp_path, capsys):
    weight = np.random.default_rng(0).standard_normal((10, 192)).astype(np.float32)
    weight[3, 0] = np.inf  # one class becomes ±inf/NaN: cosine and top-1 alone cannot judge it
    bad = _gemm_onnx(tmp_path / "inf.onnx", weight)
    line = assert_refused(run(capsys, "verify", bad, "--reference", bad, "--gates", "fp16", "--inputs", "2"), 1)
    assert "the reference gives" in line and "element [3]" in line


def test_nan_weights_are_refused_by_prune_naming_the_file(tmp_path, capsys):
    import timm
    import torch
    from safetensors.torch import save_file

    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["blocks.0.mlp.fc1.weight"] = state["blocks.0.mlp.fc1.weight"] + torch.randn_like(state["blocks.0.mlp.fc1.weight"])
    state["blocks.0.mlp.fc1.weight"][0, 0] = float("nan")
    weights = tmp_path / "diverged.safetensors"
    save_file(state, str(weights))
    out = tmp_path / "o"
    line = assert_refused(run(capsys, "prune", "deit_tiny_patch16_224", "--weights", weights, "--img-size", "32",
                              "--ratio", "0.3", "-o", out), 2, "NaN/inf")
    assert str(weights) in line and "blocks.0.mlp.fc1.weight" in line
    assert not out.exists()


def test_the_api_refuses_a_model_with_nan_weights():
    import torch
    from torch import nn

    import isodeploy
    from isodeploy.core.errors import IsodeployError

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(IsodeployError, match=r"NaN/inf values \(1 in '0.weight'\)"):
        isodeploy.prune(model, torch.randn(2, 8), ratio=0.5)


def _first_module(spec, cls_attr="in_features"):
    return next(i for i, m in enumerate(spec["modules"]) if cls_attr in m.get("attrs", {}))


SPEC_ATTR_TAMPERS = [
    ("stride on conv1", lambda s: s["modules"].append({"module": "patch_embed.proj", "attrs": {"stride": [4, 4]}}), "pruning never changes"),
    ("padding", lambda s: s["modules"].append({"module": "patch_embed.proj", "attrs": {"padding": [1, 1]}}), "pruning never changes"),
    ("eps of a norm", lambda s: s["modules"].append({"module": "norm", "attrs": {"eps": 0.5}}), "pruning never changes"),
    ("in_features text", lambda s: s["modules"][_first_module(s)]["attrs"].update(in_features="abc"), "positive integer"),
    ("in_features bool", lambda s: s["modules"][_first_module(s)]["attrs"].update(in_features=True), "positive integer"),
    ("in_features wrong", lambda s: s["modules"][_first_module(s)]["attrs"].update(in_features=5), "disagree with its weights"),
    ("num_heads float", lambda s: s["modules"].append({"module": "blocks.0.attn", "attrs": {"num_heads": 1.5}}), "positive integer"),
    ("scale changed", lambda s: s["modules"].append({"module": "blocks.0.attn", "attrs": {"scale": 3.0}}), "head_dim ** -0.5"),
    ("shape of wrong length", lambda s: s["modules"].append({"module": "norm", "attrs": {"normalized_shape": [1, 2]}}), "positive integers"),
]


@pytest.mark.parametrize("name,edit,needle", SPEC_ATTR_TAMPERS, ids=[t[0] for t in SPEC_ATTR_TAMPERS])
def test_a_spec_restores_only_what_pruning_changes(pruned, tmp_path, capsys, name, edit, needle):
    folder = tampered_copy(pruned, tmp_path, edit)
    before = snapshot(tmp_path)
    assert_refused(run(capsys, "export", folder, "-o", tmp_path / "x.onnx"), 2, needle)
    assert snapshot(tmp_path) == before


def test_a_spec_without_a_weights_hash_is_refused(pruned, tmp_path, capsys):
    folder = tampered_copy(pruned, tmp_path, lambda s: s.__delitem__("weights_sha256"))
    assert_refused(run(capsys, "export", folder, "-o", tmp_path / "x.onnx"), 2, "records no weights_sha256")


def test_the_untampered_folder_still_loads_exactly(pruned):
    import torch

    import isodeploy

    loaded = isodeploy.load(pruned)
    x = torch.randn(2, 3, 32, 32)
    again = isodeploy.load(pruned)
    with torch.no_grad():
        assert torch.equal(loaded(x), again(x))


@pytest.mark.parametrize("kind", ["absolute", "dotdot"])
@pytest.mark.parametrize("runtime", ["reference", "ort"])
def test_constant_node_external_data_outside_the_folder_is_refused(tmp_path, capsys, kind, runtime):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(10 * 192, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    location = {"absolute": str(secret), "dotdot": "../secret.bin"}[kind]
    path = _gemm_onnx(folder / "evil.onnx", constant_location=location)
    line = assert_refused(run(capsys, "verify", path, "--reference", path, "--runtime", runtime, "--inputs", "2"), 2)
    assert "Constant node 'const_w'" in line and "outside the model's folder" in line


def test_triton_repo_refuses_constant_node_external_data(tmp_path, capsys):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(10 * 192, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    path = _gemm_onnx(folder / "evil.onnx", constant_location=str(secret))
    assert_refused(run(capsys, "triton-repo", path, "--name", "evil", "-o", tmp_path / "repo"), 2, "Constant node 'const_w'")
    assert not any((tmp_path / "repo").rglob("*.onnx"))


def test_constant_node_external_data_beside_the_model_still_works(tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    weight = np.random.default_rng(1).standard_normal((10, 192)).astype(np.float32)
    (folder / "w.bin").write_bytes(weight.tobytes())
    path = _gemm_onnx(folder / "ok.onnx", weight, constant_location="w.bin")
    result = run(capsys, "verify", path, "--reference", path, "--runtime", "reference", "--inputs", "2")
    assert result.code == 0, result.text[-2000:]


# -- §5 files choose nothing, leak nothing ------------------------------------------------------------
def _metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _edit_metadata(path: Path, out: Path, **values: str) -> Path:
    import onnx

    model = onnx.load(str(path))
    for key, value in values.items():
        prop = next((p for p in model.metadata_props if p.key == f"isodeploy.{key}"), None) or model.metadata_props.add()
        prop.key, prop.value = f"isodeploy.{key}", value
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    import timm
    from safetensors.torch import save_file

    torch_model = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32)
    path = tmp_path_factory.mktemp("weights") / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in torch_model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def dense_from_file(weights_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dense") / "dense.onnx"
    assert main(["export", "deit_tiny_patch16_224", "--weights", str(weights_file), "--img-size", "32", "-o", str(out)]) == 0
    return out


def test_no_exported_onnx_carries_a_local_path(pruned, exported, dense_from_file, weights_file):
    import onnx

    for onnx_path, local in ((exported, pruned.resolve()), (dense_from_file, weights_file.resolve())):
        model = onnx.load(str(onnx_path), load_external_data=False)
        texts = [p.value for p in model.metadata_props] + [model.doc_string, model.graph.doc_string]
        for text in texts:
            assert str(local.parent) not in text and str(local) not in text, (onnx_path.name, text)
    meta = _metadata(exported)
    assert meta["isodeploy.source_folder"] == pruned.name and len(meta["isodeploy.weights_sha256"]) == 64
    meta = _metadata(dense_from_file)
    assert meta["isodeploy.weights"] == f"file:{weights_file.name}" and len(meta["isodeploy.weights_sha256"]) == 64


def test_metadata_naming_a_folder_is_never_loaded_as_reference(pruned, dense_from_file, tmp_path, capsys):
    crafted = _edit_metadata(dense_from_file, tmp_path / "crafted.onnx", source_model=str(pruned.resolve()), weights="random")
    line = assert_refused(run(capsys, "verify", crafted, "--inputs", "2"), 2, "a file does not choose what verify loads")
    assert str(pruned.resolve()) in line  # says what it refused
    old_style = _edit_metadata(dense_from_file, tmp_path / "old.onnx", source_model=str(pruned.resolve()),
                               spec_hash="sha256:" + "0" * 64, weights=f"folder:{pruned.resolve()}")
    assert_refused(run(capsys, "verify", old_style, "--inputs", "2"), 2, "--reference PATH/TO/")


def test_metadata_naming_a_weights_file_is_never_opened(dense_from_file, weights_file, tmp_path, capsys):
    crafted = _edit_metadata(dense_from_file, tmp_path / "crafted.onnx", weights=str(weights_file.resolve()))
    line = assert_refused(run(capsys, "verify", crafted, "--inputs", "2"), 2, "verify opens only files you pass")
    assert f"--weights PATH/TO/{weights_file.name}" in line


def test_verify_takes_the_weights_file_from_the_user_and_checks_its_hash(dense_from_file, weights_file, tmp_path, capsys):
    assert_refused(run(capsys, "verify", dense_from_file, "--inputs", "2"), 2, f"the weights file '{weights_file.name}'")
    assert run(capsys, "verify", dense_from_file, "--weights", weights_file, "--inputs", "2").code == 0
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(5)
    other = tmp_path / "mine.safetensors"  # same name, other weights
    save_file({k: v.contiguous() for k, v in timm.create_model("deit_tiny_patch16_224", img_size=32).state_dict().items()}, str(other))
    assert_refused(run(capsys, "verify", dense_from_file, "--weights", other, "--inputs", "2"), 2, "sha256 differs")


def test_a_pruned_onnx_finds_only_the_folder_holding_it(pruned, exported, tmp_path, capsys):
    # exported beside the folder, not in it: verify asks for the folder instead of following a path
    assert_refused(run(capsys, "verify", exported, "--inputs", "2"), 2, f"--reference PATH/TO/{pruned.name}")
    assert run(capsys, "verify", exported, "--reference", pruned, "--inputs", "2").code == 0
    inside = tmp_path / "copy"
    shutil.copytree(pruned, inside)
    shutil.copy(exported, inside / "model.onnx")
    assert run(capsys, "verify", inside / "model.onnx", "--inputs", "2").code == 0  # the folder holding it, same weights hash
    spec = json.loads((inside / "isodeploy.json").read_text())
    (inside / "isodeploy.json").write_text(json.dumps(dict(spec, weights_sha256="0" * 64)))
    assert_refused(run(capsys, "verify", inside / "model.onnx", "--inputs", "2"), 2, "--reference PATH/TO/")


# -- §3 bounded sizes: torchvision's own size kwargs --------------------------------------------------
@pytest.mark.parametrize("name,kwargs,needle", [
    ("torchvision:mobilenet_v2", {"width_mult": 1e6}, "'width_mult' = 1000000.0 is out of bounds"),
    ("torchvision:mobilenet_v2", {"width_mult": float("nan")}, "'width_mult'"),
    ("torchvision:vit_b_16", {"image_size": 10**6}, "'image_size' = 1000000 is out of bounds"),
    ("torchvision:vit_b_16", {"image_size": -224}, "'image_size'"),
])
def test_torchvision_sizes_a_file_gives_are_bounded(name, kwargs, needle):
    """ONNX/plan metadata and specs name torchvision sources with kwargs: the sizes are bounded before any build."""
    from isodeploy.core.errors import IsodeployError
    from isodeploy.zoo.sources import check_file_source

    with pytest.raises(IsodeployError, match=re.escape(needle)):
        check_file_source(name, kwargs, "crafted.onnx")
    assert check_file_source(name, {k: (1.0 if k == "width_mult" else 224) for k in kwargs}, "ok.onnx")  # in bounds: kept


def test_a_torchvision_spec_with_a_huge_width_mult_is_refused_before_building(tmp_path, capsys):
    folder = tmp_path / "mb"
    assert main(["prune", "torchvision:mobilenet_v2", "--weights", "random", "--img-size", "32", "--ratio", "0.2", "-o", str(folder)]) == 0
    spec = json.loads((folder / "isodeploy.json").read_text())
    spec["source"].setdefault("kwargs", {})["width_mult"] = 1e6
    (folder / "isodeploy.json").write_text(json.dumps(spec))
    capsys.readouterr()
    assert_refused(run(capsys, "export", folder, "-o", tmp_path / "x.onnx"), 2, "'width_mult'")
    assert not (tmp_path / "x.onnx").exists()
