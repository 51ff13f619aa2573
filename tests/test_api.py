"""The public Python API end to end: a torchvision ViT and a user's own nn.Module are pruned, saved,
reloaded in a fresh process (bit-identical outputs), exported and verified; bad input gets one clear
exception; a saved folder is data, never code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import isodeploy
from isodeploy.core.errors import IsodeployError

from api_models import TinyNet, tiny_net

TESTS = Path(__file__).parent
RELOAD = """
import sys, numpy as np, torch, isodeploy
sys.path.insert(0, {tests!r})
folder, how, out = sys.argv[1], sys.argv[2], sys.argv[3]
torch.set_num_threads(1)  # as the test process (conftest): same kernels, same bits
if how == "factory":
    model = isodeploy.load(folder, model="api_models:tiny_vit")
else:
    import api_models
    model = isodeploy.load(folder, model=api_models.tiny_net())
torch.manual_seed(1)
with torch.no_grad():
    np.save(out, model(torch.randn(3, 3, 32, 32)).numpy())
print(type(model).__name__)
"""


def _fresh_process_outputs(folder: Path, how: str, tmp_path: Path) -> np.ndarray:
    out = tmp_path / f"{how}.npy"
    env = dict(os.environ, PYTHONPATH=str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", RELOAD.format(tests=str(TESTS)), str(folder), how, str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(out)


def _same_outputs(model) -> np.ndarray:
    torch.manual_seed(1)
    with torch.no_grad():
        return model(torch.randn(3, 3, 32, 32)).numpy()


def test_torchvision_vit_prunes_heads_head_dims_and_embedding_and_round_trips(tmp_path):
    dense = isodeploy.create_model("api_models:tiny_vit", weights="random", img_size=32)
    example = torch.randn(2, 3, 32, 32)
    grouping = isodeploy.analyze(dense, example)
    assert {c.kind for c in grouping.classes} >= {"heads", "head_dim", "hidden"} and not grouping.unsupported
    result = isodeploy.prune(dense, example, ratios={"heads": 0.25, "head_dim": 0.25, "hidden": 0.3}, round_to=1)
    pruned = result.model
    assert not result.frozen
    assert dense.hidden_dim == 64 and dense.encoder.layers[0].self_attention.num_heads == 4  # input untouched
    attn = pruned.encoder.layers[0].self_attention
    assert attn.num_heads == 3 and attn.head_dim == 12  # whole heads and head dims removed
    assert pruned.hidden_dim == attn.embed_dim == 36  # the embedding: nn.MultiheadAttention ties it to heads × head_dim
    assert pruned.encoder.layers[0].mlp[0].out_features < 128
    assert result.summary["macs"]["after"] < 0.9 * result.summary["macs"]["before"]

    folder = isodeploy.save(result, tmp_path / "vit")
    spec = json.loads((folder / "isodeploy.json").read_text())
    assert spec["source"]["kind"] == "factory" and spec["source"]["name"] == "api_models:tiny_vit"
    with pytest.raises(IsodeployError, match="not trusted"):
        isodeploy.load(folder)  # the folder alone may not choose code to import
    assert np.array_equal(_fresh_process_outputs(folder, "factory", tmp_path), _same_outputs(pruned))

    report = isodeploy.export_onnx(pruned, tmp_path / "vit.onnx")
    assert report.input_shape[1:] == [3, 32, 32]
    verdict = isodeploy.verify(tmp_path / "vit.onnx", reference=pruned)
    assert verdict.passed, verdict.failures


def test_custom_module_without_a_source_round_trips_with_model_given(tmp_path):
    dense = tiny_net()
    example = torch.randn(2, 3, 32, 32)
    result = isodeploy.prune(dense, example, ratio=0.5, round_to=4)
    assert not result.frozen and result.model.block[0].out_channels < 64 and result.model.block[2].groups <= 8
    folder = isodeploy.save(result, tmp_path / "net")
    with pytest.raises(IsodeployError, match=r"model=") as info:
        isodeploy.load(folder)
    assert "\n" not in str(info.value)
    assert np.array_equal(_fresh_process_outputs(folder, "module", tmp_path), _same_outputs(result.model))
    isodeploy.export_onnx(result.model, tmp_path / "net.onnx", example_inputs=example)
    assert isodeploy.verify(tmp_path / "net.onnx", reference=result.model).passed


def test_cli_takes_torchvision_and_factory_sources(tmp_path, capsys):
    from isodeploy.cli import main

    assert main(["groups", "torchvision:resnet18", "--weights", "random", "--img-size", "32"]) == 0
    assert "hidden" in capsys.readouterr().out
    sys.path.insert(0, str(TESTS))
    out = tmp_path / "vit"
    assert main(["prune", "api_models:tiny_vit", "--weights", "random", "--img-size", "32", "--ratio", "0.25",
                 "--round-to", "1", "-o", str(out)]) == 0
    assert main(["export", str(out), "-o", str(tmp_path / "vit.onnx")]) == 2  # the folder alone is not trusted
    assert "--trust-factory api_models:tiny_vit" in capsys.readouterr().err
    trust = ["--trust-factory", "api_models:tiny_vit"]
    assert main([*trust, "export", str(out), "-o", str(tmp_path / "vit.onnx")]) == 0
    assert main([*trust, "verify", str(tmp_path / "vit.onnx"), "--reference", str(out)]) == 0


def _tampered(folder: Path, source: dict) -> Path:
    spec = json.loads((folder / "isodeploy.json").read_text())
    spec["source"] = {**spec["source"], **source}
    (folder / "isodeploy.json").write_text(json.dumps(spec))
    return folder


def test_a_spec_naming_os_system_is_never_imported(tmp_path, capsys):
    result = isodeploy.prune(tiny_net(), torch.randn(2, 3, 32, 32), ratio=0.5)
    canary = tmp_path / "pwned"
    folder = _tampered(isodeploy.save(result, tmp_path / "evil"),
                       {"kind": "factory", "name": "os:system", "kwargs": {"command": f"touch {canary}"}})
    with pytest.raises(IsodeployError, match="not trusted to choose code"):
        isodeploy.load(folder)
    from isodeploy.cli import main

    assert main(["groups", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert not canary.exists()


@pytest.mark.parametrize("kwargs,why", [({"checkpoint_path": "/etc/passwd"}, "may not come from a file"),
                                        ({"pretrained_cfg_overlay": {"file": "x"}}, "may not come from a file"),
                                        ({"num_classes": "10"}, "must be int")])
def test_timm_kwargs_from_a_file_are_allow_listed(tmp_path, kwargs, why):
    dense = isodeploy.create_model("resnet18", weights="random", num_classes=5)
    result = isodeploy.prune(dense, torch.randn(2, 3, 32, 32), ratio=0.3)
    folder = _tampered(isodeploy.save(result, tmp_path / "r"), {"kwargs": kwargs, "create_kwargs": kwargs})
    with pytest.raises(IsodeployError, match=why):
        isodeploy.load(folder)


def test_num_classes_from_a_file_is_checked_against_the_weights(tmp_path):
    dense = isodeploy.create_model("resnet18", weights="random", num_classes=5)
    result = isodeploy.prune(dense, torch.randn(2, 3, 32, 32), ratio=0.3)
    folder = _tampered(isodeploy.save(result, tmp_path / "r"), {"kwargs": {"num_classes": 9}, "create_kwargs": {"num_classes": 9}})
    with pytest.raises(IsodeployError):
        isodeploy.load(folder)


class DataDependent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return y * 2 if y.sum() > 0 else y


@pytest.mark.parametrize("call,match", [
    (lambda: isodeploy.analyze(DataDependent(), torch.randn(2, 4)), "branches on tensor values"),
    (lambda: isodeploy.prune(TinyNet(), torch.randn(2, 4, 32, 32), ratio=0.3), r"example_inputs= of shape \(2, 4, 32, 32\)"),
    (lambda: isodeploy.prune(TinyNet(), [torch.randn(2, 3, 8, 8)] * 2, ratio=0.3), "one tensor"),
    (lambda: isodeploy.prune(TinyNet(), torch.randn(2, 3, 8, 8), ratio=1.5), r"ratio= must be a fraction"),
    (lambda: isodeploy.prune(TinyNet(), torch.randn(2, 3, 8, 8), ratio=0.3, ranking="best"), "ranking="),
    (lambda: isodeploy.prune(TinyNet(), torch.randn(2, 3, 8, 8), ratios={"mlp": 0.3}), "ratios= keys"),
    (lambda: isodeploy.prune(TinyNet(), torch.randn(2, 3, 8, 8), ratio=0.3, importance="taylor"), "calib_data="),
    (lambda: isodeploy.prune("resnet18", torch.randn(2, 3, 8, 8), ratio=0.3), "model= must be a torch.nn.Module"),
    (lambda: isodeploy.create_model("no_such_package.models:build"), "does not import"),
    (lambda: isodeploy.create_model("torchvision:vit_b_99"), "unknown torchvision model"),
])
def test_bad_input_through_the_api_is_one_clear_exception(call, match):
    with pytest.raises(IsodeployError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_a_previous_release_folder_still_loads(tmp_path):
    """Spec schema 1 (the first release: timm only, no kind/tied/output_shape) migrates on read."""
    dense = isodeploy.create_model("deit_tiny_patch16_224", weights="random", img_size=32, patch_size=8, depth=2)
    result = isodeploy.prune(dense, torch.randn(2, 3, 32, 32), ratio=0.3)
    folder = isodeploy.save(result, tmp_path / "v2")
    spec = json.loads((folder / "isodeploy.json").read_text())
    source = spec["source"]
    v1 = {k: v for k, v in spec.items() if k not in ("source", "tied", "output_shape", "frozen_classes", "self_check", "versions")}
    v1["schema"] = 1
    v1["source"] = {"timm": source["name"], "timm_version": "1.0.22", "torch_version": "2.9.1", "create_kwargs": source["kwargs"],
                    "input_size": source["input_size"], "mean": source["mean"], "std": source["std"], "weights": "random",
                    "alias": None}
    (folder / "isodeploy.json").write_text(json.dumps(v1))
    reloaded = isodeploy.load(folder)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(reloaded(x), result.model(x))


def test_onnx_metadata_naming_a_factory_is_never_imported(tmp_path, capsys):
    import onnx

    result = isodeploy.prune(tiny_net(), torch.randn(2, 3, 32, 32), ratio=0.5)
    path = tmp_path / "net.onnx"
    isodeploy.export_onnx(result.model, path)
    model = onnx.load(str(path))
    canary = tmp_path / "pwned"
    for prop in model.metadata_props:
        if prop.key == "isodeploy.source_model":
            prop.value = "os:system"
        if prop.key == "isodeploy.create_kwargs":
            prop.value = json.dumps({"command": f"touch {canary}"})
    onnx.save(model, str(path))
    from isodeploy.cli import main

    for args in (["verify", str(path)], ["bench", str(path), "-r", "torch", "--iters", "2", "--warmup", "0", "--no-memory"]):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert "not trusted to choose code" in err and err.count("error:") == 1 and "Traceback" not in err
    assert not canary.exists()
