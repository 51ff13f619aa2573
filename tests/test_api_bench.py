"""The bench / compare API (``isodeploy.api.benchmark``, ``isodeploy.api.comparison``): the CLI's
defaults, the CLI's one-line errors, the gate, and the same documents the commands write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import isodeploy
from isodeploy import api
from isodeploy.benchmarking.report import BenchReport, BenchResult, LatencyStats
from isodeploy.cli import main
from isodeploy.core.safe_write import write_json_atomic

TIGHT = [10.0, 10.1, 10.0, 9.9, 10.05, 10.0, 9.95, 10.1, 10.0, 10.0]


def _result(label: str, samples: list[float], macs: int | None = None, kind: str = "onnx") -> BenchResult:
    return BenchResult(artifact=label, label=label, kind=kind, pruned=False, runtime="ort", device="cpu", precision="fp32", batch=8,
                       threads=2, input_shape=[8, 3, 32, 32], latency=LatencyStats.from_samples(samples, 8), macs=macs,
                       params=macs // 100 if macs else None)


def _report(*results: BenchResult) -> BenchReport:
    return BenchReport(results=list(results), env={"cpu": "test", "cores": 2}, settings={"batch": 8})


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer CNN as ONNX (torch.onnx, independent of the export module): milliseconds per step."""
    import warnings

    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    path = tmp_path_factory.mktemp("api_bench") / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def _cli_error(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def test_the_api_names_are_the_functions():
    assert callable(api.bench) and callable(api.compare) and not hasattr(api.bench, "__path__")
    assert api.bench.__module__ == "isodeploy.api.benchmark" and api.compare.__module__ == "isodeploy.api.comparison"
    assert isodeploy.bench.__doc__ and "isodeploy.api.benchmark.bench" in isodeploy.bench.__doc__


def test_settings_default_to_the_cli_protocol():
    """No step counts: the adaptive protocol (120 s, ±2 %), batch 8 on CPU; step counts fix it, as on the CLI."""
    settings = api.bench_settings()
    assert (settings.protocol, settings.budget_s, settings.target, settings.warmup, settings.iters) == ("adaptive", 120.0, 0.02, None, None)
    assert (settings.device, settings.batch, settings.runtimes) == ("cpu", 8, ("torch",))
    fixed = api.bench_settings(["torch,ort"], warmup=3)
    assert (fixed.protocol, fixed.warmup, fixed.iters, fixed.runtimes) == ("fixed", 3, 100, ("torch", "ort"))
    assert api.bench_settings(protocol="paper").iters == 100
    assert api.bench_settings("trt").device == "cuda"  # a string is one -r value


@pytest.mark.parametrize(("options", "flags"), [
    ({"device": "tpu"}, ["--device", "tpu"]),
    ({"batch": 0}, ["--batch", "0"]),
    ({"protocol": "adaptive", "iters": 5}, ["--protocol", "adaptive", "--iters", "5"]),
    ({"budget": 3, "protocol": "paper"}, ["--budget", "3", "--protocol", "paper"]),
    ({"precision": "fp16"}, ["--precision", "fp16"]),
])
def test_bad_settings_are_the_cli_line(tmp_path, capsys, options, flags):
    with pytest.raises(isodeploy.IsodeployError) as info:
        api.bench([str(tmp_path / "m.onnx")], **options)
    code, line = _cli_error(capsys, "bench", tmp_path / "m.onnx", *flags)
    assert (code, line) == (info.value.exit_code, f"error: {info.value}") and code == 2


def test_wrong_types_name_the_parameter():
    with pytest.raises(api.ParameterError, match=r"^artifacts= must be a list"):
        api.bench("model.onnx")
    with pytest.raises(api.ParameterError, match=r"^iters= must be an integer"):
        api.bench(["m.onnx"], iters="10")
    with pytest.raises(api.ParameterError, match=r"^artifacts= must be a list"):
        api.compare("a.json")


def test_gate_raises_the_cli_regression_error(tmp_path):
    baseline = tmp_path / "base.json"
    write_json_atomic(baseline, _report(_result("m.onnx", [x / 2 for x in TIGHT])).to_dict())
    current = _report(_result("m.onnx", TIGHT))
    with pytest.raises(api.IsodeployError, match=r"^latency regressed: m\.onnx \(ort/cpu\) p50 5\.00 → 10\.00 ms \(\+100\.0 %") as info:
        api.bench_gate(current, baseline, "10%")
    assert info.value.exit_code == api.ExitCode.NUMERIC == 1 and "allowed +10 %" in str(info.value)
    gate = api.bench_gate(current, baseline, 0.1, check=False)
    assert gate.failed and str(api.regression_error(gate)) == str(info.value)
    assert api.regression_error(api.bench_gate(current, current)) is None  # the same run passes
    payload = api.bench_payload(current, gate, baseline)
    assert payload["gate"]["failed"] is True and payload["gate"]["baseline"] == str(baseline) and payload["gate"]["rows"][0]["verdict"] == "REGRESSED"
    assert "## Regression gate" in api.bench_markdown(current, gate) and "## Regression gate" not in api.bench_markdown(current)


def test_a_baseline_without_the_artifact_fails_before_measuring(tiny_onnx, tmp_path, capsys):
    onnx = tiny_onnx
    baseline = tmp_path / "base.json"
    write_json_atomic(baseline, _report(_result("other.onnx", TIGHT)).to_dict())
    settings = api.bench_settings(["ort"], warmup=0, iters=2)
    with pytest.raises(api.IsodeployError, match=r"holds no result for tiny\.onnx \(ort/cpu\); it has other\.onnx") as info:
        api.load_baseline(baseline, [str(onnx)], settings)
    code, line = _cli_error(capsys, "bench", onnx, "-r", "ort", "--warmup", "0", "--iters", "2", "--baseline", baseline)
    assert (code, line) == (2, f"error: {info.value}")
    with pytest.raises(api.IsodeployError, match="--max-regression 'ten' is not a number"):
        api.bench_gate(_report(_result("other.onnx", TIGHT)), baseline, "ten")


def test_compare_of_saved_reports_is_what_the_cli_writes(tmp_path, capsys):
    saved = tmp_path / "saved.json"
    write_json_atomic(saved, _report(_result("big", TIGHT, 4_000_000_000, "model"), _result("small", [x / 2 for x in TIGHT], 1_000_000_000, "model")).to_dict())
    report = api.compare([saved], accuracy=["small=70.5"])
    out, md = tmp_path / "c.json", tmp_path / "c.md"
    assert main(["compare", str(saved), "--accuracy", "small=70.5", "--json", str(out), "--md", str(md)]) == 0
    assert json.loads(out.read_text()) == json.loads(json.dumps(report.to_dict()))
    assert md.read_text() == api.compare_markdown(report)
    small = report.rows[1]
    assert (report.reference, small.accuracy, small.mac_reduction) == ("big", 70.5, pytest.approx(4.0))
    assert small.speedup["ort/cpu"] == pytest.approx(2.0, rel=0.05)
    api.write_compare_files(report, json_path=tmp_path / "api.json")
    assert json.loads((tmp_path / "api.json").read_text()) == json.loads(out.read_text())


def test_compare_errors_are_the_cli_lines(tiny_onnx, tmp_path, capsys):
    onnx = tiny_onnx
    with pytest.raises(api.IsodeployError) as info:
        api.compare([onnx], uniform_twin=True, runtimes=["ort"], warmup=0, iters=2)
    assert str(info.value) == "--uniform-twin needs at least one pruned isodeploy folder among the artifacts"
    code, line = _cli_error(capsys, "compare", onnx, "--uniform-twin", "-r", "ort", "--warmup", "0", "--iters", "2")
    assert (code, line) == (2, f"error: {info.value}")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "isodeploy.compare/1"}))
    with pytest.raises(api.IsodeployError, match="expected 'isodeploy.bench/1'") as info:
        api.compare([bad])
    assert _cli_error(capsys, "compare", bad) == (2, f"error: {info.value}")


def test_bench_runs_like_the_cli(tiny_onnx, tmp_path):
    """Fixed counts give the fixed protocol and the report the command writes; no counts: adaptive."""
    fixed = api.bench([tiny_onnx], runtimes="ort", batch=2, threads=1, warmup=1, iters=4, memory=False)
    assert fixed.protocol["name"] == "fixed" and fixed.results[0].latency.iters == 4
    assert [line.split(":")[0] for line in api.bench_notes(fixed)][0] == "protocol"
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    api.write_bench_files(fixed, json_path=out, md_path=md)
    assert json.loads(out.read_text())["results"][0]["label"] == "tiny.onnx" and "gate" not in json.loads(out.read_text())
    assert md.read_text() == api.bench_markdown(fixed) and md.read_text().startswith("# Benchmark")
    adaptive = isodeploy.bench([str(tiny_onnx)], runtimes=["ort"], batch=1, threads=1, memory=False, budget=1.5)
    assert adaptive.protocol["name"] == "adaptive" and adaptive.settings["warmup"] is None
