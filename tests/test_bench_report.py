"""Latency statistics, the report's JSON round trip, Markdown output and environment capture."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from isodeploy.benchmarking.envinfo import collect_env, describe_machine
from isodeploy.benchmarking.latency import time_host
from isodeploy.benchmarking.markdown import to_markdown
from isodeploy.benchmarking.report import BenchReport, BenchResult, LatencyStats, MemoryFigure, load_report
from isodeploy.commands.common import write_json_atomic


def test_stats_match_numpy_definitions() -> None:
    import numpy as np

    samples = [12.0, 10.0, 11.0, 30.0, 10.5, 10.2, 9.8, 10.1, 10.4, 10.3]
    s = LatencyStats.from_samples(samples, batch=8)
    assert s.mean_ms == pytest.approx(np.mean(samples))
    assert s.p50_ms == pytest.approx(np.percentile(samples, 50))
    assert s.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert s.p99_ms == pytest.approx(np.percentile(samples, 99))
    assert s.std_ms == pytest.approx(statistics.stdev(samples))
    assert s.cv == pytest.approx(s.std_ms / s.mean_ms)
    assert s.throughput_ips == pytest.approx(8 * 1000 / s.mean_ms)
    assert s.noisy  # one 30 ms outlier in ten steps is well over 5 % CV
    assert not LatencyStats.from_samples([10.0, 10.1, 9.9, 10.0], batch=1).noisy


def test_time_host_counts_and_measures() -> None:
    import time

    calls: list[int] = []
    advanced: list[int] = []
    samples = time_host(lambda: (calls.append(1), time.sleep(0.004)), warmup=2, iters=5, advance=advanced.append)
    assert len(calls) == 7 and len(samples) == 5 and sum(advanced) == 7
    assert all(3.5 <= s < 200 for s in samples)  # milliseconds, not seconds or ns


def _report() -> BenchReport:
    result = BenchResult(
        artifact="deit_s", label="deit_small_patch16_224", kind="model", pruned=False, runtime="torch", device="cpu",
        precision="fp32", batch=8, threads=2, input_shape=[8, 3, 224, 224],
        latency=LatencyStats.from_samples([100.0, 101.0, 99.0, 100.5], 8),
        memory=MemoryFigure(peak_mb=900.0, baseline_mb=700.0, delta_mb=200.0, method="CPU torch: peak RSS ..."),
        macs=4_598_882_304, params=22_050_664, timing="CPU: perf_counter_ns",
    )
    return BenchReport(results=[result], env=collect_env("cpu"), settings={"batch": 8, "warmup": 20, "iters": 4, "threads": 2},
                       notes=["CPU figures are relative"])


def test_json_round_trip(tmp_path: Path) -> None:
    report = _report()
    path = tmp_path / "bench.json"
    write_json_atomic(path, report.to_dict())
    back = load_report(path)
    assert back == report
    assert json.loads(path.read_text())["schema"] == "isodeploy.bench/1"


def test_damaged_report_is_one_clear_error(tmp_path: Path) -> None:
    from isodeploy.core.errors import IsodeployError

    data = _report().to_dict()
    del data["results"][0]["latency"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(IsodeployError, match="damaged bench report"):
        load_report(tmp_path / "bad.json")


def test_markdown_names_machine_and_methods() -> None:
    text = to_markdown(_report())
    assert "| deit_small_patch16_224 | torch | cpu | 8 | 4.60 G | 22.05 M |" in text
    assert "900 MB (+200)" in text
    assert "memory: CPU torch: peak RSS" in text and "timing: CPU: perf_counter_ns" in text
    assert describe_machine(_report().env) in text


def test_env_records_machine_and_versions() -> None:
    env = collect_env("cpu")
    assert env["cores"] >= 1 and env["cpu"]
    libs = env["libraries"]
    assert {"torch", "onnxruntime", "timm", "isodeploy"} <= set(libs)
