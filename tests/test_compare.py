"""`isodeploy compare`: the side-by-side table, speed-up vs MAC reduction, accuracy, and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isodeploy.benchmarking.compare import build_compare, compare_markdown, parse_accuracy
from isodeploy.benchmarking.plot import plot_latency_vs_macs
from isodeploy.benchmarking.report import BenchReport, BenchResult, LatencyStats, MemoryFigure
from isodeploy.cli import main
from isodeploy.commands.common import write_json_atomic
from isodeploy.core.errors import IsodeployError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _r(label: str, runtime: str, p50: float, macs: int | None, pruned: bool = False, mem: float | None = None) -> BenchResult:
    return BenchResult(
        artifact=label, label=label, kind="folder" if pruned else "model", pruned=pruned, runtime=runtime, device="cpu",
        precision="fp32", batch=8, threads=2, input_shape=[8, 3, 224, 224],
        latency=LatencyStats.from_samples([p50 * 0.99, p50, p50 * 1.01], 8),
        memory=MemoryFigure(peak_mb=mem + 500, baseline_mb=500, delta_mb=mem, method="m") if mem else None,
        macs=macs, params=macs // 200 if macs else None,
    )


def _bench() -> BenchReport:
    results = [
        _r("deit_base_patch16_224", "torch", 400.0, 17_563_828_224, mem=400),
        _r("deit_base_patch16_224", "ort", 300.0, 17_563_828_224, mem=360),
        _r("deit_4.2g", "torch", 120.0, 4_160_000_000, pruned=True, mem=120),
        _r("deit_4.2g", "ort", 80.0, 4_160_000_000, pruned=True),
        _r("deit_small_patch16_224", "torch", 100.0, 4_598_882_304, mem=110),
        _r("deit_small_patch16_224", "ort", 75.0, 4_598_882_304),
    ]
    return BenchReport(results=results, env={"cpu": "AMD EPYC", "cores": 2}, settings={"batch": 8}, notes=["CPU figures are relative"])


def test_rows_speedup_and_mac_reduction() -> None:
    report = build_compare(_bench(), {"deit_small_patch16_224": 79.9, "deit_4.2g": 82.4})
    assert [r.label for r in report.rows] == ["deit_base_patch16_224", "deit_4.2g", "deit_small_patch16_224"]
    assert report.reference == "deit_base_patch16_224" and report.columns == ["torch/cpu", "ort/cpu"]
    base, pruned, small = report.rows
    assert base.speedup == {"torch/cpu": pytest.approx(1.0), "ort/cpu": pytest.approx(1.0)}
    assert pruned.speedup["ort/cpu"] == pytest.approx(300 / 80)
    assert pruned.mac_reduction == pytest.approx(17_563_828_224 / 4_160_000_000)
    assert (pruned.kind, small.kind) == ("pruned", "uniform")
    assert (pruned.accuracy, small.accuracy, base.accuracy) == (82.4, 79.9, None)
    assert small.peak_memory_mb == {"torch/cpu": 110}


def test_markdown_table() -> None:
    text = compare_markdown(build_compare(_bench(), {"deit_4.2g": 82.4}))
    assert "| deit_4.2g | pruned | 4.16 G | 20.80 M | 4.22× | 120.00 | 3.33× |" in text
    assert "| 82.40 |" in text
    assert "Machine: AMD EPYC, 2 cores; batch 8." in text and "CPU figures are relative" in text


def test_plot_writes_a_png_atomically(tmp_path: Path) -> None:
    out = plot_latency_vs_macs(build_compare(_bench()), tmp_path / "plots" / "lat.png")
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["lat.png"]  # no temp file left behind


def test_plot_bad_input(tmp_path: Path) -> None:
    with pytest.raises(IsodeployError, match="must end in"):
        plot_latency_vs_macs(build_compare(_bench()), tmp_path / "lat.gif")
    no_macs = BenchReport(results=[_r("a.onnx", "ort", 10.0, None)], env={}, settings={})
    with pytest.raises(IsodeployError, match="no compared artifact has a MAC count"):
        plot_latency_vs_macs(build_compare(no_macs), tmp_path / "lat.png")
    assert not (tmp_path / "lat.png").exists()


@pytest.mark.parametrize("item", ["deit_b", "deit_b=", "=80", "deit_b=high"])
def test_accuracy_must_be_name_equals_number(item: str) -> None:
    with pytest.raises(IsodeployError, match="NAME=VALUE"):
        parse_accuracy([item])


def test_accuracy_for_an_unknown_artifact() -> None:
    with pytest.raises(IsodeployError, match="none of the compared artifacts"):
        build_compare(_bench(), {"resnet50": 80.0})


def test_compare_cli_measures_two_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, md, png = tmp_path / "c.json", tmp_path / "c.md", tmp_path / "c.png"
    code = main(["compare", "resnet18", "mobilenetv2_050", "--img-size", "32", "--weights", "random", "--batch", "2",
                 "--warmup", "1", "--iters", "3", "--threads", "1", "--no-memory", "--accuracy", "mobilenetv2_050@32=65.9",
                 "--plot", str(png), "--json", str(out), "--md", str(md)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "isodeploy.compare/1" and data["reference"] == "resnet18@32"
    ref, small = data["rows"]
    assert ref["macs"] == 37_523_456 and small["macs"] < ref["macs"] / 10
    assert small["accuracy"] == 65.9 and set(small["latency_ms"]) == {"torch/cpu"}
    assert small["mac_reduction"] == pytest.approx(ref["macs"] / small["macs"])
    assert data["bench"]["schema"] == "isodeploy.bench/1"  # the raw measurements travel with the comparison
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert "![latency vs MACs](c.png)" in md.read_text()
    assert "resnet18@32" in capsys.readouterr().out


def test_compare_cli_from_saved_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "gpu.json"
    write_json_atomic(saved, _bench().to_dict())
    out = tmp_path / "c.json"
    assert main(["compare", str(saved), "--json", str(out)]) == 0
    assert [r["label"] for r in json.loads(out.read_text())["rows"]] == ["deit_base_patch16_224", "deit_4.2g", "deit_small_patch16_224"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "isodeploy.compare/1", "rows": []}))
    capsys.readouterr()
    assert main(["compare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected 'isodeploy.bench/1'" in err


def test_compare_uniform_twin_adds_the_twin_and_its_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pruned"
    assert main(["prune", "deit_tiny_patch16_224", "--weights", "random", "--img-size", "32", "--ratio", "0.3", "-o", str(folder)]) == 0
    out = tmp_path / "cmp.json"
    args = ["compare", "deit_tiny_patch16_224", str(folder), "resnet18", "--uniform-twin", "--img-size", "32", "--weights", "random", "--runtime", "ort",
            "--batch", "2", "--warmup", "1", "--iters", "4", "--threads", "1", "--memory-repeats", "2", "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert [r["role"] for r in data["rows"]] == ["dense", "pruned", "standard", "uniform-twin"]
    twin = data["rows"][3]
    assert twin["label"] == "pruned-uniform-twin"
    assert abs(twin["macs"] / data["rows"][1]["macs"] - 1) <= 0.01
    ratios = {(r["metric"], r["numerator_role"], r["denominator_role"]): r for r in data["ratios"]}
    for metric in ("latency", "latency_per_gmac", "peak_memory"):
        r = ratios[(metric, "pruned", "uniform-twin")]
        assert r["low"] <= r["median"] <= r["high"] and r["n"] == (2 if metric == "peak_memory" else 4)
    assert ("latency", "pruned", "standard") in ratios and "pruned ÷ uniform-twin" in printed


def test_compare_uniform_twin_needs_a_pruned_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "resnet18", "--uniform-twin", "--img-size", "32", "--weights", "random", "--runtime", "ort", "--iters", "2"]) == 2
    err = capsys.readouterr().err
    assert "needs at least one pruned isodeploy folder" in err and err.strip().count("\n") == 0
