"""The adaptive bench protocol: intervals on synthetic timings with known answers, the budget stop, the
A-B-B-A order, rationing, progress lines, the paper protocol in the JSON, and the gate's noise rule."""

from __future__ import annotations

import io
import json
import math
import random
import time
from pathlib import Path

import pytest

from isodeploy.benchmarking.gate import check_regression
from isodeploy.benchmarking.progress import PlainReporter, Tick
from isodeploy.benchmarking.protocol import make_protocol
from isodeploy.benchmarking.ratios import RatioFigure
from isodeploy.benchmarking.report import BenchReport, BenchResult, LatencyStats
from isodeploy.benchmarking.schedule import run_adaptive, run_fixed
from isodeploy.benchmarking.stats import FASTER, SAME, SLOWER, TOO_FEW, change_interval, ratio_interval
from isodeploy.cli import main
from isodeploy.core.errors import IsodeployError
from isodeploy.runtime.base import CPU_TIMING, TimedStep


def _noisy(rng: random.Random, n: int, centre: float, cv: float) -> list[float]:
    """Per-round latencies: log-normal jitter plus, now and then, a disturbed round (another process)."""
    return [centre * math.exp(rng.gauss(0, cv)) * (1.4 if rng.random() < 0.05 else 1.0) for _ in range(n)]


# ----------------------------------------------------------------------------- statistics with known answers


def test_identical_distributions_give_no_measurable_difference() -> None:
    rng = random.Random(1)
    verdicts = [ratio_interval(_noisy(rng, 20, 500, 0.08), _noisy(rng, 20, 500, 0.08)).verdict for _ in range(300)]
    # a 95 % interval misses 1.0 about 5 % of the time; that is what the number means
    assert verdicts.count(SAME) / len(verdicts) >= 0.90
    assert set(verdicts) <= {SAME, FASTER, SLOWER}


def test_a_ten_percent_shift_is_detected_with_its_size() -> None:
    rng = random.Random(2)
    ivs = [ratio_interval(_noisy(rng, 20, 550, 0.05), _noisy(rng, 20, 500, 0.05)) for _ in range(100)]
    assert sum(iv.verdict == SLOWER for iv in ivs) >= 90  # power at n = 20 with 5 % disturbed rounds
    assert sum(iv.ci_low <= 1.10 <= iv.ci_high for iv in ivs) >= 85  # the interval covers the true ratio
    rev = [ratio_interval(_noisy(rng, 20, 500, 0.05), _noisy(rng, 20, 550, 0.05)).verdict for _ in range(50)]
    assert rev.count(FASTER) >= 45


def test_paired_rounds_cancel_a_drifting_machine() -> None:
    """The machine slows down 2× over the run; pairing round i with round i keeps the 10 % difference sharp."""
    rng = random.Random(3)
    drift = [1 + k / 20 for k in range(20)]
    a = [550 * d * math.exp(rng.gauss(0, 0.01)) for d in drift]
    b = [500 * d * math.exp(rng.gauss(0, 0.01)) for d in drift]
    iv = ratio_interval(a, b)
    assert iv.verdict == SLOWER and iv.ci_low > 1.08 and iv.ci_high < 1.12
    unpaired = change_interval(a, b)  # ignoring the pairing, the drift swamps the difference
    assert unpaired.ci_high - unpaired.ci_low > 3 * (iv.ci_high - iv.ci_low)


def test_interval_is_reciprocal_and_needs_six_rounds() -> None:
    rng = random.Random(4)
    a, b = _noisy(rng, 12, 500, 0.05), _noisy(rng, 12, 480, 0.05)
    ab, ba = ratio_interval(a, b), ratio_interval(b, a)
    assert ab.value == pytest.approx(1 / ba.value) and ab.ci_low == pytest.approx(1 / ba.ci_high)
    few = ratio_interval(a[:5], b[:5])
    assert few.confidence < 0.95 and few.verdict == TOO_FEW
    assert ratio_interval(a[:6], b[:6]).confidence >= 0.95


def test_verdict_sentence_follows_the_interval() -> None:
    same = RatioFigure("latency_per_gmac", "p", "u", "pruned", "uniform-twin", "ort", "cpu", 1.0, 0.9, 1.1, 0.95, 1.05, 24,
                       value=1.007, ci_low=0.963, ci_high=1.039, confidence=0.95, method="m", verdict=SAME)
    assert same.sentence().startswith("**no measurable difference** (1.007×, 95 % CI 0.963–1.039")
    slower = RatioFigure(**{**same.__dict__, "value": 1.104, "ci_low": 1.05, "ci_high": 1.16, "verdict": SLOWER})
    assert slower.sentence().startswith("10.4 % slower (1.104×, 95 % CI 1.050–1.160")


# ----------------------------------------------------------------------------- the timing loop


class _Ref:
    def __init__(self, label: str, role: str = "") -> None:
        self.label, self.role = label, role


class _Entry:
    """What the schedule needs of an entry: a timed step, a label, the rounds it collects."""

    def __init__(self, label: str, seconds: float, log: list[str], role: str = "", jitter: float = 0.0) -> None:
        rng = random.Random(label)

        def step() -> None:
            log.append(label)
            time.sleep(seconds * (1 + jitter * rng.random()))

        self.timed = TimedStep(step=step, input_shape=[1], timing=CPU_TIMING)
        self.ref, self.runtime = _Ref(label, role), "ort"
        self.rounds: list[list[float]] = []
        self.round_ids: list[int] = []
        self.warmup_steps = 0


def test_budget_stops_the_loop_in_time() -> None:
    log: list[str] = []
    a, b = _Entry("A", 0.004, log, jitter=3.0), _Entry("B", 0.004, log, jitter=3.0)  # too noisy to converge
    proto = make_protocol("adaptive", budget_s=1.5)
    proto.warmup_s, proto.min_block_s = 0.05, 0.0
    t0 = time.monotonic()
    outcome = run_adaptive([a, b], proto, pairs=[(a, b)])
    took = time.monotonic() - t0
    assert outcome.reason == "budget" and took <= 1.5 + 0.3
    assert outcome.rounds >= 6 and len(a.rounds) == outcome.rounds
    assert outcome.headline and outcome.headline[0]["n"] == outcome.rounds


def test_slow_machine_stops_by_the_budget_before_min_rounds_and_says_too_few() -> None:
    """A busy machine (each step 0.3 s) must not stretch a 2 s budget to min_rounds: it stops, and
    the interval it reports is honest about being too short."""
    log: list[str] = []
    a, b = _Entry("A", 0.3, log), _Entry("B", 0.3, log)
    proto = make_protocol("adaptive", budget_s=2.0)
    proto.min_block_s = 0.0  # warmup_s stays 1 s: the schedule must shrink it to fit the budget
    ticks: list = []

    class _Keep:
        def tick(self, t) -> None:
            ticks.append(t)

    t0 = time.monotonic()
    outcome = run_adaptive([a, b], proto, pairs=[(a, b)], reporter=_Keep())
    took = time.monotonic() - t0
    assert outcome.reason == "budget" and outcome.rounds < proto.min_rounds
    assert took <= 2.0 + 0.35, took  # one step's slack at most
    assert a.warmup_steps == 1 and b.warmup_steps == 1  # warm-up took ≤ a quarter of the budget
    assert all(t.rounds_expected is None or t.rounds_expected <= outcome.rounds + 2 for t in ticks)
    if outcome.headline:
        assert outcome.headline[0]["confidence"] < 0.95  # not a 95 % interval: the verdict says so


def test_steady_pair_converges_before_the_budget() -> None:
    log: list[str] = []
    a, b = _Entry("A", 0.006, log), _Entry("B", 0.003, log)
    proto = make_protocol("adaptive", budget_s=30)
    proto.warmup_s, proto.min_block_s = 0.05, 0.0
    outcome = run_adaptive([a, b], proto, pairs=[(a, b)])
    assert outcome.reason == "converged" and outcome.elapsed_s < 10
    assert outcome.headline[0]["ci_high"] / outcome.headline[0]["ci_low"] < 1.05


def test_rounds_run_a_b_b_a_and_ration_the_expensive_entry() -> None:
    log: list[str] = []
    pruned, twin = _Entry("P", 0.002, log, "pruned"), _Entry("T", 0.002, log, "uniform-twin")
    dense = _Entry("D", 0.02, log, "dense")  # 10× the step time, in no headline ratio
    proto = make_protocol("adaptive", budget_s=2.0)
    proto.warmup_s, proto.min_block_s, proto.target = 0.02, 0.0, 1e-6  # never converges: runs to the budget
    log.clear()
    run_adaptive([dense, pruned, twin], proto, pairs=[(pruned, twin)])
    timed = "".join(log[dense.warmup_steps + pruned.warmup_steps + twin.warmup_steps:])  # after the warm-ups
    first_round = timed[:5]
    assert first_round in ("PTDTP",), timed[:20]  # mirrored: the pair around the middle
    assert "PTTP" in timed  # rounds without the rationed dense model
    assert len(dense.rounds) < len(pruned.rounds) / 2 and len(dense.rounds) >= 6
    assert set(dense.round_ids) <= set(pruned.round_ids)


def test_fixed_protocol_keeps_exact_step_counts() -> None:
    log: list[str] = []
    a, b = _Entry("A", 0.0, log), _Entry("B", 0.0, log)
    proto = make_protocol("paper")
    outcome = run_fixed([a, b], proto)
    assert outcome.reason == "fixed" and outcome.rounds == 10
    assert log.count("A") == 120 and a.warmup_steps == 20 and sum(map(len, a.rounds)) == 100


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"name": "adaptive", "iters": 5}, "fix the protocol"),
    ({"name": "paper", "budget_s": 10}, "applies to the adaptive protocol"),
    ({"name": "paper", "iters": 50}, r"20 warm-up \+ 100"),
    ({"name": "quick"}, "not one of adaptive, paper, fixed"),
    ({"name": None, "budget_s": -1}, "positive number of seconds"),
])
def test_protocol_conflicts_are_one_line(kwargs: dict, needle: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(IsodeployError, match=needle):
        make_protocol(name, **kwargs)


def test_plain_progress_lines_carry_an_eta() -> None:
    buf = io.StringIO()
    rep = PlainReporter(stream=buf, every_s=0)
    with rep.stage("loading m"):
        pass
    rep.tick(Tick("round", "all artifacts", 1, 12, 3.0, 33.0, 0.08, 0.02))
    rep.tick(Tick("done", "12 rounds, stopped: converged", 12, 12, 36.0, 0.0, 0.018, 0.02))
    lines = buf.getvalue().splitlines()
    assert lines[0] == "bench: loading m"
    assert "round 1/~12" in lines[1] and "ETA 0:33" in lines[1] and "CI ±8.0%" in lines[1]
    assert "ETA 0:00" in lines[2]


# ----------------------------------------------------------------------------- the gate uses the same kind of test


def _gate_result(rounds: list[float]) -> BenchResult:
    samples = [x for x in rounds for _ in range(3)]
    return BenchResult(artifact="m.onnx", label="m.onnx", kind="onnx", pruned=False, runtime="ort", device="cpu", precision="fp32", batch=8,
                       threads=2, input_shape=[8, 3, 32, 32], latency=LatencyStats.from_samples(samples, 8, [[x] for x in rounds]))


def _gate(new: list[float], base: list[float], max_regression: float = 0.10):
    report = lambda r: BenchReport(results=[_gate_result(r)], env={}, settings={})  # noqa: E731
    return check_regression(report(new), report(base), max_regression)


def test_gate_noise_never_fails_and_a_real_regression_does() -> None:
    rng = random.Random(5)
    noise_fails = sum(_gate(_noisy(rng, 20, 100, 0.08), _noisy(rng, 20, 100, 0.08)).failed for _ in range(200))
    assert noise_fails == 0
    regress_fails = sum(_gate(_noisy(rng, 20, 110, 0.03), _noisy(rng, 20, 100, 0.03)).failed for _ in range(100))
    assert regress_fails >= 90
    small = _gate([x * 1.03 for x in _noisy(random.Random(6), 20, 100, 0.005)], _noisy(random.Random(6), 20, 100, 0.005))
    assert not small.failed and small.rows[0].verdict == "ok (slower, within the allowed regression)"


def test_gate_refuses_a_zero_latency_baseline() -> None:
    base = _gate_result([1.0] * 10)
    base.latency.p50_ms = 0.0
    with pytest.raises(IsodeployError, match="zero latency"):
        check_regression(BenchReport(results=[_gate_result([15.0] * 10)], env={}, settings={}), BenchReport(results=[base], env={}, settings={}), 0.1)


# ----------------------------------------------------------------------------- end to end on a real ONNX file


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from isodeploy.export.onnx import export_onnx
    from isodeploy.loading import load_model

    loaded = load_model("resnet18", weights="random", img_size=32)
    path = tmp_path_factory.mktemp("proto") / "r18.onnx"
    export_onnx(loaded, path)
    return path


def test_bench_paper_protocol_is_recorded_in_the_json(tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    code = main(["bench", str(tiny_onnx), "--runtime", "ort", "--threads", "1", "--batch", "1", "--protocol", "paper", "--no-memory", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    proto = data["protocol"]
    assert (proto["name"], proto["warmup"], proto["iters"], proto["rounds"]) == ("paper", 20, 100, 10)
    (r,) = data["results"]
    assert r["warmup_steps"] == 20 and r["latency"]["iters"] == 100 and len(r["latency"]["rounds_ms"]) == 10
    assert proto["stop"]["reason"] == "fixed" and proto["steps"][0]["timed"] == 100


def test_bench_adaptive_default_prints_eta_lines_without_a_tty(tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "copy.onnx"
    other.write_bytes(tiny_onnx.read_bytes())
    out = tmp_path / "a.json"
    code = main(["bench", str(tiny_onnx), str(other), "--runtime", "ort", "--threads", "1", "--batch", "1", "--budget", "4", "--no-memory",
                 "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rounds = [line for line in captured.err.splitlines() if line.startswith("bench: round")]
    assert rounds and all("ETA" in line for line in rounds)
    data = json.loads(out.read_text())
    assert data["protocol"]["name"] == "adaptive" and data["protocol"]["stop"]["reason"] in ("converged", "budget")
    assert data["protocol"]["stop"]["elapsed_s"] <= 4 + 1
    (ratio,) = [r for r in data["ratios"] if r["metric"] == "latency"]
    assert ratio["confidence"] >= 0.95 and ratio["ci_low"] <= ratio["value"] <= ratio["ci_high"]
    assert ratio["verdict"] in (SAME, FASTER, SLOWER) and "signed-rank" in ratio["method"]
    assert set(data["load"]) >= {"load_before", "load_after", "other_cores", "busy"}


def test_bench_cli_refuses_conflicting_protocol_options(tiny_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(tiny_onnx), "--runtime", "ort", "--protocol", "adaptive", "--iters", "5"]) == 2
    err = capsys.readouterr().err
    assert "fix the protocol" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
