"""Untrusted files: a tampered spec, ONNX metadata, bench baseline, stage record or ownership marker
is one ``error:`` line (or ignored where it only steers caching) — never a traceback, never code run,
never a file written outside the output folder. (Triton repositories: tests/test_triton_repo.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_check import TINY, assert_refused, exported, pruned, run, snapshot, tampered_copy, temporaries  # noqa: F401 - fixtures

from isodeploy.cli import main
from isodeploy.core.ownership import OWNER_FILE


def _set(path: str, value):
    def edit(spec):
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return edit


SPEC_TAMPERS = [
    ("a JSON list", lambda spec: [spec], "holds a JSON list"),
    ("truncated", lambda spec: json.dumps(spec)[:500], "not valid JSON"),
    ("binary", lambda spec: b"\xff\xfe\x00garbage", None),
    ("schema as text", _set("schema", "1"), "no schema version"),
    ("source as text", _set("source", "resnet18"), None),
    ("input_size text", _set("source.input_size", "abc"), "input_size"),
    ("input_size zero", _set("source.input_size", [3, 0, -5]), "input_size"),
    ("input_size huge", _set("source.input_size", [3, 10**9, 10**9]), "input_size"),
    ("mean text", _set("source.mean", "x"), "mean"),
    ("modules number", _set("modules", 5), "modules must be a list"),
    ("unknown module", _set("modules.0.module", "blocks.99.attn"), "lacks"),
    ("a method", _set("modules.0.attrs", {"forward": 1}), "not a plain attribute"),
    ("a parameter", _set("modules.0.attrs", {"weight": 3}), "not a plain attribute"),
    ("a private attr", _set("modules.0.attrs", {"_parameters": {}}), "not a restorable value"),
    ("an object value", _set("modules.0.attrs", {"in_features": {"a": 1}}), "not a restorable value"),
    ("weights hash number", _set("weights_sha256", 5), "weights_sha256"),
]


@pytest.mark.parametrize("name,edit,needle", SPEC_TAMPERS, ids=[t[0] for t in SPEC_TAMPERS])
@pytest.mark.parametrize("command", ["groups", "export"])
def test_a_tampered_spec_is_one_line(pruned, tmp_path, capsys, command, name, edit, needle):
    folder = tampered_copy(pruned, tmp_path, edit)
    before = snapshot(tmp_path)
    args = [command, folder] + (["-o", tmp_path / "x.onnx"] if command == "export" else [])
    assert_refused(run(capsys, *args), 2, needle)
    assert snapshot(tmp_path) == before  # nothing written, nothing half-written


def _with_metadata(exported: Path, tmp_path: Path, **values: str) -> Path:
    import onnx

    model = onnx.load(str(exported))
    for prop in model.metadata_props:
        key = prop.key.removeprefix("isodeploy.")
        if key in values:
            prop.value = values[key]
    out = tmp_path / "edited.onnx"
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="module")
def dense_exported(tmp_path_factory) -> Path:
    """A dense model's ONNX: its metadata (source by name, kwargs, input size) is what verify rebuilds from."""
    out = tmp_path_factory.mktemp("dense") / "model.onnx"
    assert main(["export", "resnet18", "--weights", "random", "--img-size", "32", "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    "values,needle",
    [
        ({"create_kwargs": "{not json"}, "create_kwargs"),
        ({"create_kwargs": "[1, 2]"}, "create_kwargs"),
        ({"input_size": "[3, 0]"}, "input_size"),
        ({"input_size": "\"big\""}, "input_size"),
    ],
)
def test_malformed_onnx_metadata_is_one_line(dense_exported, tmp_path, capsys, values, needle):
    edited = _with_metadata(dense_exported, tmp_path, **values)
    assert_refused(run(capsys, "verify", edited, "--inputs", "2"), 2, needle)


class Payload:
    """Any pickled object: ``weights_only`` loading refuses it (it could run code)."""


def test_pickled_weights_are_refused_with_the_fix(tmp_path, capsys):
    import torch

    torch.save({"conv1.weight": torch.zeros(1), "x": Payload()}, tmp_path / "evil.pth")
    line = assert_refused(run(capsys, "prune", "resnet18", "--weights", tmp_path / "evil.pth", "--ratio", "0.3", "-o", tmp_path / "o"), 2)
    assert "it holds pickled objects" in line and "re-save it as safetensors" in line
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def baseline(exported, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "base.json"
    assert main(["bench", str(exported), "--runtime", "ort", "--iters", "3", "--warmup", "1", "--no-memory", "--json", str(out)]) == 0
    return out


def _damage(report: dict, how: str):
    r = report["results"][0]
    if how == "p50 text":
        r["latency"]["p50_ms"] = "fast"
    elif how == "p50 nan":
        r["latency"]["p50_ms"] = float("nan")
    elif how == "batch text":
        r["batch"] = "8"
    elif how == "samples text":
        r["latency"]["samples_ms"] = ["a", "b"]
    elif how == "no results":
        report["results"] = []
    elif how == "latency missing":
        del r["latency"]
    return report


@pytest.mark.parametrize("how", ["p50 text", "p50 nan", "batch text", "samples text", "no results", "latency missing", "not json", "a list"])
def test_a_damaged_baseline_fails_before_the_benchmark(exported, baseline, tmp_path, capsys, how):
    damaged = tmp_path / "damaged.json"
    if how == "not json":
        damaged.write_text(baseline.read_text()[:100])
    elif how == "a list":
        damaged.write_text("[]")
    else:
        damaged.write_text(json.dumps(_damage(json.loads(baseline.read_text()), how)))
    result = run(capsys, "bench", exported, "--runtime", "ort", "--iters", "3", "--warmup", "1", "--no-memory", "--baseline", damaged)
    assert_refused(result, 2)
    assert "p50" not in result.out  # refused before anything was measured (no latency table)


def test_the_gate_refuses_another_model_with_the_same_name(exported, baseline, tmp_path, capsys):
    import torch

    other = tmp_path / exported.name  # same file name, another model
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10)).eval()
    torch.onnx.export(net, torch.randn(1, 3, 32, 32), str(other), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False, opset_version=17)
    result = run(capsys, "bench", other, "--runtime", "ort", "--iters", "3", "--warmup", "1", "--no-memory", "--baseline", baseline)
    assert_refused(result, 2, "is another model than this run's")


def test_a_tampered_stage_record_or_marker_only_causes_reruns(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["prune-export", *TINY, "--no-bench", "-o", out]
    assert run(capsys, *args).code == 0
    state = json.loads((out / "isodeploy.json").read_text())
    state["pipeline"] = {"stages": {"prune": "x", "export": {"key": 5, "outputs": "model.onnx", "output_digests": []}}}
    (out / "isodeploy.json").write_text(json.dumps(state))
    real = json.loads((out / OWNER_FILE).read_text())["files"]
    (out / OWNER_FILE).write_text(json.dumps({"files": ["../../escape", "/etc/passwd", 7, *real]}))
    outside = snapshot(tmp_path, skip=out)
    result = run(capsys, *args)
    assert result.code == 0, result.text
    assert "export: done" in result.out
    owned = json.loads((out / OWNER_FILE).read_text())["files"]
    assert all(isinstance(f, str) and "/" not in f for f in owned)
    assert snapshot(tmp_path, skip=out) == outside and not temporaries(out)
    # a marker that no longer lists a file: isodeploy can't prove it is its own, so it refuses
    (out / OWNER_FILE).write_text(json.dumps({"files": [f for f in real if f != "model.onnx"]}))
    before = snapshot(out)
    assert_refused(run(capsys, *args, "--force"), 2, "model.onnx exists and was not written by isodeploy")
    assert {k: v for k, v in snapshot(out).items() if not k.endswith(OWNER_FILE)} == {
        k: v for k, v in before.items() if not k.endswith(OWNER_FILE)}


def test_training_images_that_never_decode(pruned, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(4):
        (bad / f"{i}.jpg").write_bytes(b"not a jpeg")
    before = snapshot(tmp_path)
    assert_refused(run(capsys, "prune-export", *TINY, "--no-bench", "--finetune-data", bad, "-o", tmp_path / "run"),
                   2, "no readable image in --finetune-data")
    assert_refused(run(capsys, "finetune", pruned, "--data", bad, "-o", tmp_path / "ft", "--workers", "0"), 2, "no readable image")
    assert snapshot(tmp_path) == before


def test_unreadable_calibration_folders(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "0.png").write_bytes(b"garbage")
    (tmp_path / "file").write_text("x")
    for source, needle in ((bad, "no readable image"), (tmp_path / "file", "is not a folder of images"), (tmp_path / "nothere", "does not exist")):
        assert_refused(run(capsys, "prune", *TINY, "--importance", "taylor", "--calib-data", source, "-o", tmp_path / "o"), 2, needle)
        assert not (tmp_path / "o").exists()


def _external_data_onnx(folder: Path, location: str) -> Path:
    """A tiny ONNX whose one weight lives in an external file at ``location``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    weight = numpy_helper.from_array(np.ones((10, 3 * 8 * 8), np.float32), "w")
    set_external_data(weight, location=location)
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Gemm", ["flat", "w"], ["logits"], transB=1)], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], [weight])
    path = folder / "evil.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
@pytest.mark.parametrize("runtime", ["reference", "ort"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, capsys, kind, runtime):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4 * 10 * 3 * 8 * 8)
    folder = tmp_path / "model"
    folder.mkdir()
    if kind == "symlink":
        (folder / "w.bin").symlink_to(secret)
    location = {"dotdot": "../secret.bin", "absolute": str(secret), "symlink": "w.bin"}[kind]
    onnx_path = _external_data_onnx(folder, location)
    assert_refused(run(capsys, "verify", onnx_path, "--reference", onnx_path, "--runtime", runtime, "--inputs", "2"), 2)


@pytest.mark.parametrize("how", ["p50 text", "batch text", "samples text", "latency missing"])
def test_compare_refuses_a_damaged_saved_report(baseline, tmp_path, capsys, how):
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(_damage(json.loads(baseline.read_text()), how)))
    assert_refused(run(capsys, "compare", damaged), 2, "damaged bench report")
