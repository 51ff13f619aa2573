"""`isodeploy prune` end to end: folders that reload identically in a fresh process, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from isodeploy.cli import main
from isodeploy.pruning.pruner import prune_model, save_pruned
from isodeploy.pruning.plan import PruneConfig
from isodeploy.loading import load_model

ROUND_TRIP = {
    "deit": ("deit_tiny_patch16_224", 32, {"patch_size": 8, "depth": 2}),
    "resnet50": ("resnet50", 64, {}),
    "convnext": ("convnext_atto", 64, {}),
    "mobilenetv2": ("mobilenetv2_050", 64, {}),
    "swin": ("swin_tiny_patch4_window7_224", 64, {"window_size": 4, "depths": (1, 1, 2, 1)}),
}


def test_reload_round_trip_in_a_fresh_process(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the child runs 1 thread: the same kernels on both sides, whatever ran before
    try:
        _round_trip(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _round_trip(tmp_path):
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    expected = {}
    for key, (name, size, kwargs) in ROUND_TRIP.items():
        loaded = load_model(name, weights="random", img_size=size, **kwargs)
        result = prune_model(loaded, PruneConfig(ratio=0.3, head_ratio=0.34, round_to=8))
        save_pruned(result, tmp_path / key)
        with torch.no_grad():
            expected[key] = result.loaded.model(x[..., :size, :size])
        assert result.plan.params_after < result.plan.params_before
    torch.save(x, tmp_path / "x.pt")
    script = textwrap.dedent(f"""
        import torch, isodeploy
        torch.set_num_threads(1)  # same kernels as the parent, so outputs can match bit for bit
        x = torch.load({str(tmp_path / 'x.pt')!r})
        out = {{}}
        for key in {list(ROUND_TRIP)!r}:
            model = isodeploy.load({str(tmp_path)!r} + '/' + key)  # an nn.Module that knows its input size
            size = model._isodeploy_input["input_size"][-1]
            with torch.no_grad():
                out[key] = model(x[..., :size, :size])
        torch.save(out, {str(tmp_path / 'out.pt')!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    actual = torch.load(tmp_path / "out.pt")
    for key in ROUND_TRIP:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)


def _run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned") / "deit"
    code = main(["prune", "deit_tiny_patch16_224", "--weights", "random", "--img-size", "32", "--ratio", "0.25",
                 "-o", str(out), "--json", str(out.parent / "prune.json")])
    assert code == 0
    return out


def test_prune_command_writes_spec_and_summary(pruned_dir):
    spec = json.loads((pruned_dir / "isodeploy.json").read_text())
    assert spec["schema"] == 2 and spec["source"]["kind"] == "timm" and spec["source"]["name"] == "deit_tiny_patch16_224"
    assert spec["macs"]["after"] < spec["macs"]["before"] and spec["params"]["after"] < spec["params"]["before"]
    assert {c["kind"] for c in spec["classes"]} == {"embedding", "hidden", "heads", "head_dim"}
    assert all(len(g["kept"]) == g["kept_width"] for g in spec["groups"])
    assert any(m["attrs"].get("num_heads") for m in spec["modules"]) or all(
        g["kept_width"] == g["width"] for g in spec["groups"] if g["kind"] == "heads")
    summary = json.loads((pruned_dir.parent / "prune.json").read_text())
    assert summary["macs"] == spec["macs"]


def test_folder_is_accepted_as_model(pruned_dir, capsys):
    code, out, _ = _run(capsys, "groups", pruned_dir)
    assert code == 0 and "deit_tiny_patch16_224" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--ratio", "1.5"], "--ratio must be a fraction in [0, 1)"),
        (["--preset", "deit-9g"], "unknown preset 'deit-9g'"),
        (["--ratio", "0.95", "--ranking", "local"], "would remove"),
        (["--target-macs", "1k"], "unreachable"),
        (["--target-macs", "lots"], "--target-macs takes a number"),
        (["--ratio", "0.3", "--importance", "taylor", "--calib-data", "/no/such/dir"], "does not exist"),
    ],
)
def test_bad_prune_input(tmp_path, capsys, args, message):
    out = tmp_path / "o"
    code, _, err = _run(capsys, "prune", "deit_tiny_patch16_224", "--weights", "random", "--img-size", "32", "-o", out, *args)
    assert code != 0 and message in err, err
    assert not out.exists()  # nothing half-written
    assert [p.name for p in tmp_path.iterdir()] == []


def test_cnn_preset_on_vit_and_vit_preset_on_cnn(tmp_path, capsys):
    code, _, err = _run(capsys, "prune", "resnet18", "--weights", "random", "--img-size", "64", "--preset", "deit-4.2g", "-o", tmp_path / "o")
    assert code != 0 and "has no attention heads" in err


def test_calibration_folder_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, "prune", "resnet18", "--weights", "random", "--img-size", "64", "--ratio", "0.3",
                        "--importance", "taylor", "--calib-data", empty, "-o", tmp_path / "o")
    assert code != 0 and "no images" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not a png")
    code, _, err = _run(capsys, "prune", "resnet18", "--weights", "random", "--img-size", "64", "--ratio", "0.3",
                        "--importance", "taylor", "--calib-data", bad, "-o", tmp_path / "o")
    assert code != 0 and "no readable image" in err and "1 unreadable" in err


def test_taylor_on_an_image_folder(tmp_path, capsys):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 30), color=(i * 60, 100, 200 if label == "cat" else 20)).save(tmp_path / "data" / label / f"{i}.png")
    (tmp_path / "data" / "dog" / "broken.jpg").write_bytes(b"xx")
    code, _, err = _run(capsys, "prune", "resnet18", "--weights", "random", "--img-size", "32", "--ratio", "0.3",
                        "--importance", "taylor", "--calib-data", tmp_path / "data", "--calib-batches", "2", "-o", tmp_path / "o")
    assert code == 0, err
    assert "skipped 1 unreadable" in err
    spec = json.loads((tmp_path / "o" / "isodeploy.json").read_text())
    assert spec["config"]["importance"] == "taylor"


def test_bad_spec_folders(pruned_dir, tmp_path, capsys):
    import shutil

    newer = tmp_path / "newer"
    shutil.copytree(pruned_dir, newer)
    spec = json.loads((newer / "isodeploy.json").read_text())
    (newer / "isodeploy.json").write_text(json.dumps(dict(spec, schema=99)))
    code, _, err = _run(capsys, "groups", newer)
    assert code != 0 and "schema 99, newer than this isodeploy" in err

    changed = tmp_path / "changed"
    shutil.copytree(pruned_dir, changed)
    spec["source"]["timm"] = spec["source"]["name"] = "resnet18"
    (changed / "isodeploy.json").write_text(json.dumps(spec))
    code, _, err = _run(capsys, "groups", changed)
    assert code != 0 and "'resnet18'" in err and err.count("error:") == 1 and "Traceback" not in err

    tampered = tmp_path / "tampered"
    shutil.copytree(pruned_dir, tampered)
    (tampered / "model.safetensors").write_bytes(b"garbage")
    code, _, err = _run(capsys, "groups", tampered)
    assert code != 0 and "does not match the spec" in err


def test_output_folder_guards(pruned_dir, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = _run(capsys, "prune", "resnet18", "--weights", "random", "--ratio", "0.3", "-o", a_file)
    assert code != 0 and "is a file" in err
    code, _, err = _run(capsys, "prune", "resnet18", "--weights", "random", "--img-size", "64", "--ratio", "0.3", "-o", pruned_dir)
    assert code != 0 and "holds a pruned 'deit_tiny_patch16_224'" in err
    assert (pruned_dir / "model.safetensors").exists()  # the earlier run is intact
