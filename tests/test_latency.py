"""Pruning to a latency budget: the budget parser, the staircase-aware solver on a synthetic runtime
with a known staircase, the table cache's fingerprint, and the measured check with its one corrective step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from isodeploy.benchmarking.stats import Interval
from isodeploy.core.errors import IsodeployError, ParameterError
from isodeploy.latency.budget import LatencyBudget, parse_latency_budget
from isodeploy.latency.measure import Paired
from isodeploy.latency.prune import prune_to_latency
from isodeploy.latency.settings import LatencySettings
from isodeploy.latency.solver import Option, class_options, solve
from isodeploy.latency.table import ClassTable, Step
from isodeploy.pruning.plan import PruneConfig

STEP = 64  # the synthetic runtime's tile: latency drops only when a width crosses a multiple of 64


def _iv(value: float) -> Interval:
    return Interval(value, value * 0.999, value * 1.001, 0.95, 8, "exact (synthetic)")


@dataclass
class _Entry:
    latency: float
    timed: object = None


class StairRuntime:
    """A runtime whose latency is 50 + Σ over Linear layers of out_features rounded *up* to 64: a
    staircase with known steps. Counts every model it is asked to open (cache tests)."""

    runtime, runtime_version, device, processor, cores, precision = "synthetic", "1", "cpu", "stairs", 2, "fp32"

    def __init__(self, dense: nn.Module, example: torch.Tensor, threads: int = 2) -> None:
        self.threads, self.batch = threads, int(example.shape[0])
        self.opened = 0
        self.dense = _Entry(self.latency(dense))

    @staticmethod
    def latency(model: nn.Module) -> float:
        return 50.0 + sum(math.ceil(m.out_features / STEP) * STEP for m in model.modules() if isinstance(m, nn.Linear))

    def quick_dense_ms(self) -> float:
        return self.dense.latency

    def open(self, model: nn.Module, label: str = "") -> _Entry:
        self.opened += 1
        return _Entry(self.latency(model))

    def pair(self, entry: _Entry, protocol=None, reporter=None) -> Paired:
        return Paired(_iv(entry.latency / self.dense.latency), _iv(entry.latency), _iv(self.dense.latency), 8, "converged")

    def ratio_of(self, model: nn.Module, label: str = "") -> Paired:
        return self.pair(self.open(model, label))

    def release(self, entry) -> None:
        pass

    def close(self) -> None:
        pass


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 32)).eval()


def _hidden_width(result) -> int:
    return next(c.width_after for c in result.classes if c.kind == "hidden")


def _run(budget: str, runtimes: list | None = None, threads: int = 2, **kw):
    made = runtimes if runtimes is not None else []

    def make(dense, example):
        made.append(StairRuntime(dense, example, threads))
        return made[-1]

    settings = LatencySettings(budget=parse_latency_budget(budget), batch=4, threads=threads, measurer=make, **kw)
    return prune_to_latency(_mlp(), torch.randn(2, 32), PruneConfig(), settings, name="stairs-mlp")


DENSE = 50 + 256 + 64  # the MLP's synthetic dense latency


def test_solver_lands_on_the_widest_width_of_a_step():
    # 192 and 160 hidden channels cost the same (both round up to 192); the budget allows exactly that step
    result = _run(str((50 + 192 + 64) / DENSE + 1e-3))
    assert _hidden_width(result) == 192  # not 160: the flat part of the staircase is never paid for
    lat = result.spec["latency"]
    assert -0.05 <= lat["budget_error"] <= 0 and lat["within_tolerance"] and not lat["corrective_step"]
    assert lat["table"]["measurements"] >= 4 and lat["solver"].startswith("multiple-choice knapsack")


def test_a_miss_inside_a_flat_step_is_measured_and_corrected():
    # 0.75 falls between stairs: the interpolated width (144) really costs the 192 level; the check sees it
    result = _run("0.75")
    lat = result.spec["latency"]
    first = lat["attempts"][0]
    assert first["budget_error"] > 0.05  # the prediction assumed a slope inside a flat step
    assert lat["corrective_step"] and len(lat["attempts"]) == 2
    assert _hidden_width(result) == 128  # the next real step down: the budget holds
    assert lat["measured_ratio"]["value"] <= 0.75
    assert lat["measured_ratio"]["value"] == pytest.approx((50 + 128 + 64) / DENSE, rel=1e-3)


def test_a_time_budget_is_priced_on_the_dense_latency():
    result = _run(f"{50 + 192 + 64 + 0.5}ms")
    assert _hidden_width(result) == 192
    assert result.spec["latency"]["measured_ms"]["value"] == pytest.approx(50 + 192 + 64)


def test_a_time_at_or_above_the_dense_latency_is_refused_before_the_table():
    made: list = []
    with pytest.raises(ParameterError, match=r"not below the dense model's measured"):
        _run(f"{DENSE + 10}ms", made)
    assert made[0].opened == 0  # refused before any variant was timed


def test_the_table_is_cached_and_reused_on_the_same_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("ISODEPLOY_CACHE_DIR", str(tmp_path))
    first: list = []
    a = _run("0.85", first)
    assert not a.spec["latency"]["table"]["reused"]
    second: list = []
    b = _run("0.85", second)
    assert b.spec["latency"]["table"]["reused"]
    assert second[0].opened == 1  # only the final check: no table step was timed again
    assert a.spec["latency"]["table"]["path"] == b.spec["latency"]["table"]["path"]
    assert (tmp_path / "latency").is_dir() and len(list((tmp_path / "latency").glob("*.json"))) == 1


def test_a_different_thread_count_does_not_reuse_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("ISODEPLOY_CACHE_DIR", str(tmp_path))
    _run("0.85", threads=2)
    other: list = []
    c = _run("0.85", other, threads=4)
    assert not c.spec["latency"]["table"]["reused"] and other[0].opened > 1
    assert len(list((tmp_path / "latency").glob("*.json"))) == 2


def test_a_named_table_from_another_setting_is_one_line(tmp_path):
    table = tmp_path / "table.json"
    _run("0.85", table_path=table, threads=2)
    assert table.is_file()
    with pytest.raises(IsodeployError, match=r"measured for another setting \(threads 2 in the table ≠ 4 here\)"):
        _run("0.85", table_path=table, threads=4)


def test_a_damaged_named_table_is_one_line(tmp_path):
    table = tmp_path / "table.json"
    table.write_text('{"schema": 1, "classes": 3}')
    with pytest.raises(IsodeployError, match="is not an isodeploy latency table"):
        _run("0.85", table_path=table)


def test_knapsack_trades_one_big_step_for_two_small_ones():
    # class 1 saves 0.30 for loss 10; classes 2 and 3 save 0.16 each for loss 3: the exact solver takes 2 + 3
    options = {1: [Option(1, 1.0, 8, 0.0, 0, 0.0), Option(1, 0.5, 4, 0.30, 0, 10.0)],
               2: [Option(2, 1.0, 8, 0.0, 0, 0.0), Option(2, 0.5, 4, 0.16, 0, 3.0)],
               3: [Option(3, 1.0, 8, 0.0, 0, 0.0), Option(3, 0.5, 4, 0.16, 0, 3.0)]}
    chosen = solve(options, 0.30)
    assert chosen[1].keep == 1.0 and chosen[2].keep == 0.5 and chosen[3].keep == 0.5
    assert solve(options, 0.95) is None  # out of reach


@pytest.mark.parametrize("text, ms, fraction", [("300ms", 300.0, None), ("0.3s", 300.0, None), ("250us", 0.25, None),
                                                ("0.25", None, 0.25), (0.5, None, 0.5), (" 12.5 ms ", 12.5, None)])
def test_budget_parser(text, ms, fraction):
    budget = parse_latency_budget(text)
    assert budget.ms == (pytest.approx(ms) if ms is not None else None) and budget.fraction == fraction


@pytest.mark.parametrize("bad, words", [("0", "in (0, 1)"), ("-0.2", "in (0, 1)"), ("-5ms", "positive time"), ("0ms", "positive time"),
                                        ("nan", "finite"), ("inf", "finite"), ("abc", "takes a time"), ("1.5", "in (0, 1)"),
                                        ("300", "300ms"), (True, "takes a time"), ("", "takes a time")])
def test_bad_budgets_are_one_line(bad, words):
    with pytest.raises(ParameterError) as info:
        parse_latency_budget(bad)
    assert words in str(info.value) and "\n" not in str(info.value) and str(info.value).startswith("target_latency=")


def test_a_time_budget_above_the_dense_latency():
    with pytest.raises(ParameterError, match="not below"):
        LatencyBudget(text="2s", ms=2000.0).fraction_of(1500.0)
    assert LatencyBudget(text="0.5", fraction=0.5).fraction_of(10.0) == 0.5


def test_a_table_timed_on_a_busy_machine_is_not_cached(tmp_path, monkeypatch):
    from isodeploy.benchmarking import loadwatch

    monkeypatch.setenv("ISODEPLOY_CACHE_DIR", str(tmp_path))
    busy = loadwatch.MachineLoad([3.0, 3.0, 3.0], [3.1, 3.0, 3.0], 1.6, 2, True)
    monkeypatch.setattr(loadwatch.LoadWatch, "stop", lambda self: busy)
    lines: list[str] = []
    settings = LatencySettings(budget=parse_latency_budget("0.85"), batch=4, threads=2, measurer=lambda d, e: StairRuntime(d, e))
    result = prune_to_latency(_mlp(), torch.randn(2, 32), PruneConfig(), settings, progress=lines.append)
    assert any("busy while the latency table was timed" in line and "not cached" in line for line in lines)
    assert not (tmp_path / "latency").exists() and result.spec["latency"]["table"]["path"] is None
    assert result.spec["latency"]["table"]["load"]["busy"] and result.spec["latency"]["attempts"][0]["load"]["busy"]


def test_a_mac_target_beside_the_latency_budget_must_hold_too():
    # the MLP's MACs are 64 × hidden: the budget alone allows 192 channels, 8192 MACs allow only 128
    made: list = []
    settings = LatencySettings(budget=parse_latency_budget(str((50 + 192 + 64) / DENSE + 1e-3)), batch=4, threads=2,
                               measurer=lambda d, e: made.append(StairRuntime(d, e)) or made[-1])
    result = prune_to_latency(_mlp(), torch.randn(2, 32), PruneConfig(target_macs=8192.0), settings)
    assert result.plan.macs_after <= 8192 * 1.01 and _hidden_width(result) <= 128
    with pytest.raises(IsodeployError, match="out of reach"):
        prune_to_latency(_mlp(), torch.randn(2, 32), PruneConfig(target_macs=100.0), settings)


def test_another_max_group_ratio_does_not_reuse_the_table(tmp_path, monkeypatch):
    # the table's deepest steps depend on the floor --max-group-ratio sets
    monkeypatch.setenv("ISODEPLOY_CACHE_DIR", str(tmp_path))
    settings = lambda: LatencySettings(budget=parse_latency_budget("0.85"), batch=4, threads=2,  # noqa: E731
                                       measurer=lambda d, e: StairRuntime(d, e))
    prune_to_latency(_mlp(), torch.randn(2, 32), PruneConfig(), settings())
    other = prune_to_latency(_mlp(), torch.randn(2, 32), PruneConfig(max_group_ratio=0.5), settings())
    assert not other.spec["latency"]["table"]["reused"] and len(list((tmp_path / "latency").glob("*.json"))) == 2


def test_a_step_faster_than_a_wider_one_only_within_the_noise_is_no_option():
    """Staircase dominance: the 40-wide step saves 0.102, the 48-wide one 0.100, and the table's noise is
    0.01 — the narrower step buys nothing measurable for 8 more channels. It must be no option, and the
    next real drop (to 32) must interpolate from 40, not from 48; a budget needing 0.101 then takes a
    width inside that drop instead of the spurious step."""
    steps = [Step(keep=w / 64, width=w, ratio=1 - saved, ci_low=1 - saved - 0.01, ci_high=1 - saved + 0.01,
                  macs=int(1000 * (1 - saved)), params=w) for w, saved in ((48, 0.100), (40, 0.102), (32, 0.200))]
    ct = ClassTable(class_id=1, kind="hidden", signature="s", width=64, groups=1, steps=steps)
    options = class_options(ct, 1000, lambda keep: (1.0 - keep, round(keep * 64)), noise=0.01)
    widths = {o.width: o for o in options}
    assert 40 not in widths and {64, 48, 32} <= set(widths)
    inside = [o for o in options if 32 < o.width < 48]
    assert inside and all(o.width < 40 for o in inside)  # the drop starts at 40
    chosen = solve({1: options}, 0.101)
    assert chosen is not None and 32 < chosen[1].width < 40
    assert chosen[1].saved >= 0.101
