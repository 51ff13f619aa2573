"""The public functions behind ``verify``, ``export``, ``build-engine``, ``groups`` and ``presets``: called
from Python they give what the command gives, with the same defaults and the same one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import isodeploy
from isodeploy import api
from isodeploy.cli import main

torch.set_num_threads(1)


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny DeiT exported once (random weights, seed 0), and a copy with one weight perturbed."""
    folder = tmp_path_factory.mktemp("api_verify")
    from isodeploy.loading import load_model

    loaded = load_model("deit_tiny_patch16_224", weights="random", img_size=32, patch_size=8, depth=2)
    isodeploy.export_onnx(loaded, folder / "deit.onnx")  # a LoadedModel records its source: verify rebuilds it
    proto = onnx.load(str(folder / "deit.onnx"))
    head = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)) if len(t.dims) == 2 else 0)
    weights = numpy_helper.to_array(head).copy()
    weights.flat[0] += 0.5
    head.CopyFrom(numpy_helper.from_array(weights, head.name))
    onnx.save(proto, str(folder / "bad.onnx"))
    return folder / "deit.onnx", folder / "bad.onnx"


# ---------------------------------------------------------------- verify


def test_verify_artifact_gives_the_cli_json(exported, tmp_path, capsys):
    good, _ = exported
    out = tmp_path / "v.json"
    assert cli(capsys, "verify", good, "--inputs", "3", "--threads", "1", "--json", out)[0] == 0
    from_cli = json.loads(out.read_text())
    phases: list[str] = []
    outcome = api.verify_artifact(good, inputs=3, threads=1, progress=phases.append)
    assert outcome.passed and outcome.precision == "fp32" and outcome.gates.name == "fp32"
    mine = json.loads(json.dumps(outcome.to_dict()))
    for key in ("passed", "artifact", "reference", "precision", "gates"):
        assert mine[key] == from_cli[key], key
    assert [s["batch_sizes"] for s in mine["sets"]] == [s["batch_sizes"] for s in from_cli["sets"]] == [[1, 7]]
    # the same seeded inputs: the same errors to the last bit
    assert mine["sets"][0]["outputs"][0]["max_abs"] == from_cli["sets"][0]["outputs"][0]["max_abs"]
    assert phases[0] == f"opening {good}" and phases[-1].startswith("running 3 random samples")


def test_a_failed_gate_is_the_same_numeric_error(exported, capsys):
    _, bad = exported
    code, _, err = cli(capsys, "verify", bad, "--inputs", "4")
    assert code == 1
    with pytest.raises(api.IsodeployError) as info:
        api.verify_artifact(bad, inputs=4)
    assert info.value.exit_code == api.ExitCode.NUMERIC == 1
    assert err.strip() == f"error: {info.value}"
    outcome = api.verify_artifact(bad, inputs=4, raise_on_failure=False)  # the figures, without the raise
    assert not outcome.passed and str(outcome.error()) == str(info.value)
    report = isodeploy.verify(bad, samples=4)  # the older door: the first report, a failure not raised
    assert not report.passed and report.to_dict()["outputs"] == outcome.reports[0].to_dict()["outputs"]


def test_isodeploy_verify_goes_through_verify_artifact(exported, monkeypatch):
    import isodeploy.api.verification as verify_module

    calls = []
    real = verify_module.verify_artifact
    monkeypatch.setattr(verify_module, "verify_artifact", lambda *a, **k: calls.append(k) or real(*a, **k))
    report = isodeploy.verify(exported[0], samples=2, batch_sizes=[2])
    assert report.passed and report.batch_sizes == [2]
    assert calls and calls[0]["inputs"] == 2 and calls[0]["raise_on_failure"] is False


@pytest.mark.parametrize("kwargs, flags, line", [
    ({"batch_sizes": "0,2"}, ["--batch-sizes", "0,2"], "batch_sizes= must be positive integers separated by commas (e.g. 1,7), not '0,2'"),
    ({"inputs": 0}, ["--inputs", "0"], "inputs= must be at least 1"),
    ({"gates": "int8"}, ["--gates", "int8"], "gates= must be auto, fp32 or fp16, not 'int8'"),
    ({"min_cosine": 2.0}, ["--min-cosine", "2"], "min_cosine= must be a number in [-1, 1]; got 2.0"),
    ({"atol": float("nan")}, ["--atol", "nan"], "atol= must be a number in [0, inf]; got nan"),
])
def test_bad_verify_options_are_one_line_before_any_file_is_read(tmp_path, capsys, kwargs, flags, line):
    missing = tmp_path / "missing.onnx"  # never looked at: the options fail first
    with pytest.raises(api.ParameterError) as info:
        api.verify_artifact(missing, **kwargs)
    assert str(info.value) == line and info.value.exit_code == 2
    code, _, err = cli(capsys, "verify", missing, *flags)
    assert code == 2 and err.strip() == f"error: {info.value.for_cli()}"
    assert err.strip().startswith(f"error: {flags[0]} ")


def test_verify_artifact_takes_a_module_and_a_gates_object(exported):
    model = isodeploy.create_model("deit_tiny_patch16_224", weights="random", img_size=32, patch_size=8, depth=2)
    outcome = api.verify_artifact(exported[0], reference=model, inputs=2, gates=api.Gates.fp16(), min_top1=0.5)
    assert outcome.passed and outcome.gates.name == "fp16+custom" and outcome.gates.min_top1 == 0.5
    with pytest.raises(api.ParameterError, match=r"^reference= must be .*; got int$"):
        api.verify_artifact(exported[0], reference=3)


# ---------------------------------------------------------------- export, build-engine


def test_export_defaults_and_refusals_match_the_cli(tmp_path, capsys):
    assert api.default_onnx_path("resnet18") == api.default_onnx_path("resnet18", "fp32") == Path("resnet18.onnx")
    assert str(api.default_onnx_path("torchvision:resnet18", "fp16")) == "torchvision_resnet18.fp16.onnx"
    assert api.check_export_options("fp32", calib_samples=4, safe_range=1.0) == ["safe_range", "calib_samples"]
    assert api.check_export_options("fp16", calib_samples=4, safe_range=1.0) == []
    with pytest.raises(api.ParameterError) as info:
        api.check_export_options("fp8")
    assert str(info.value) == "precision= must be fp32 or fp16, not 'fp8'"
    code, _, err = cli(capsys, "export", "resnet18", "--weights", "random", "--precision", "fp8", "-o", tmp_path / "r.onnx")
    assert code == 2 and err.strip() == "error: --precision must be fp32 or fp16, not 'fp8'"
    code, _, err = cli(capsys, "export", "resnet18", "--weights", "random", "--img-size", "32", "--safe-range", "9",
                       "-o", tmp_path / "r.onnx")
    assert code == 0 and "warning: --safe-range ignored: only --precision fp16" in err


@pytest.mark.parametrize("kwargs, flags, line", [
    ({"opt_level": 9}, ["--opt-level", "9"], "opt_level= must be in 0..5 (TensorRT's builder optimization level), got 9"),
    ({"workspace_gb": 0.0}, ["--workspace-gb", "0"], "workspace_gb= must be positive, got 0.0"),
])
def test_build_engine_refuses_bad_options_like_the_cli(tmp_path, capsys, kwargs, flags, line):
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"not read: the options fail first")
    assert api.default_engine_path(onnx_path) == tmp_path / "m.plan"
    with pytest.raises(api.ParameterError) as info:
        api.build_engine(onnx_path, **kwargs)
    assert str(info.value) == line
    code, _, err = cli(capsys, "build-engine", onnx_path, *flags)
    assert code == 2 and err.strip() == f"error: {info.value.for_cli()}"
    with pytest.raises(api.IsodeployError, match=r"must end in \.plan"):
        api.build_engine(onnx_path, tmp_path / "m.engine")


# ---------------------------------------------------------------- groups, presets


def test_channel_groups_give_the_cli_json(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert cli(capsys, "groups", "resnet18", "--weights", "random", "--img-size", "32", "--json", out)[0] == 0
    result = api.channel_groups("resnet18", weights="random", img_size=32)
    assert result.frozen is None and result.to_dict()["model"] == "resnet18"
    mine, from_cli = json.loads(json.dumps(result.to_dict())), json.loads(out.read_text())
    assert mine.pop("seconds").keys() == from_cli.pop("seconds").keys()  # timings differ run to run
    assert mine == from_cli
    with pytest.raises(api.ParameterError) as info:
        api.channel_groups("resnet18", weights="random", check=1.5)
    assert str(info.value).startswith("check= must be a fraction in [0, 1)")
    code, _, err = cli(capsys, "groups", "resnet18", "--weights", "random", "--check", "1.5")
    assert code == 2 and err.strip() == f"error: {info.value.for_cli()}" and err.startswith("error: --check ")


def test_list_presets_is_the_cli_json(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert cli(capsys, "presets", "--json", out)[0] == 0
    found = api.list_presets()
    assert found.aliases and found.recipes and set(found.aliases) == set(api.load_presets()[0])
    assert json.loads(json.dumps(found.to_dict())) == json.loads(out.read_text())
