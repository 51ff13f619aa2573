"""Interleaved rounds and the ratios with their spread."""

from __future__ import annotations

import pytest

from isodeploy.benchmarking.latency import round_sizes
from isodeploy.benchmarking.ratios import compute_ratios, find, pair_ratios
from isodeploy.benchmarking.report import BenchResult, LatencyStats, MemoryFigure
from isodeploy.benchmarking.suite import BenchSettings, _Bench, _Entry
from isodeploy.benchmarking.artifacts import ArtifactRef
from isodeploy.runtime.base import CPU_TIMING, TimedStep


def _result(label: str, role: str, rounds: list[float], macs: int, mem: list[float] | None = None) -> BenchResult:
    samples = [x for x in rounds for _ in range(3)]
    lat = LatencyStats.from_samples(samples, 8, [[x] * 3 for x in rounds])
    memory = MemoryFigure(peak_mb=0, delta_mb=sorted(mem)[len(mem) // 2], method_id="cpu-peak-rss-fresh-process", samples_mb=mem) if mem else None
    return BenchResult(artifact=label, label=label, kind="onnx", pruned=role == "pruned", runtime="ort", device="cpu", precision="fp32",
                       batch=8, threads=2, input_shape=[8, 3, 224, 224], latency=lat, macs=macs, role=role, memory=memory)


def test_round_sizes_split_the_steps_evenly() -> None:
    assert round_sizes(100, 10) == [10] * 10
    assert round_sizes(7, 10) == [1] * 7
    assert round_sizes(23, 10) == [3, 3, 3] + [2] * 7
    assert sum(round_sizes(101, 10)) == 101


def test_ratios_are_per_round_with_spread() -> None:
    pruned = _result("p", "pruned", [10, 11, 12, 30], 4_000_000_000, [100, 102, 101])
    twin = _result("u", "uniform-twin", [10, 10, 12, 15], 2_000_000_000, [200, 200, 200])
    dense = _result("d", "dense", [40, 44, 48, 120], 16_000_000_000)
    ratios = [r.__dict__ for r in compute_ratios([dense, pruned, twin])]
    lat = find(ratios, "latency", "pruned", "uniform-twin")
    assert lat["n"] == 4 and lat["low"] == pytest.approx(1.0) and lat["high"] == pytest.approx(2.0)
    assert lat["median"] == pytest.approx(1.05)  # median of 1.0, 1.1, 1.0, 2.0: a slow round does not move it much
    per_mac = find(ratios, "latency_per_gmac", "pruned", "uniform-twin")
    assert per_mac["median"] == pytest.approx(lat["median"] * 0.5)
    mem = find(ratios, "peak_memory", "pruned", "uniform-twin")
    assert mem["n"] == 3 and mem["low"] == pytest.approx(0.5) and mem["high"] == pytest.approx(0.51)
    assert find(ratios, "latency", "pruned", "dense")["median"] == pytest.approx(0.25)
    assert find(ratios, "peak_memory", "pruned", "dense") is None  # dense has no memory figure


def test_memory_ratio_needs_one_method() -> None:
    a = _result("p", "pruned", [1, 1], 1, [10, 10])
    b = _result("u", "uniform-twin", [1, 1], 1, [20, 20])
    b.memory.method_id = "cuda-mem-get-info-fresh-process"
    assert [r.metric for r in pair_ratios(a, b)] == ["latency", "latency_per_gmac"]


def test_rounds_interleave_the_artifacts() -> None:
    """After every warm-up, the timed steps go A B C A B C …, each round timing every artifact once in turn."""
    order: list[str] = []
    entries = []
    for name in "ABC":
        timed = TimedStep(step=(lambda n=name: order.append(n)), input_shape=[1], timing=CPU_TIMING)
        entries.append(_Entry(ArtifactRef(name, "onnx", name), "ort", None, timed, (None, None), {}))
    bench = _Bench(BenchSettings(runtimes=("ort",), batch=1, warmup=2, iters=4, rounds=2, threads=1), None, None)
    bench.time_all(entries)
    assert "".join(order) == "AABBCC" + "AABBCCAABBCC"
    assert all(len(e.rounds) == 2 and all(len(r) == 2 for r in e.rounds) for e in entries)
