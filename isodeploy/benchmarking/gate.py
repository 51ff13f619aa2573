"""CI regression gate: is this run slower than a baseline beyond what noise explains?

Per (artifact label, runtime, device), the ratio new ÷ baseline of the two runs' per-round latencies
gets the same kind of interval as every ratio in a report (:func:`isodeploy.benchmarking.stats.change_interval`:
Hodges–Lehmann shift with a Mann–Whitney 95 % interval; unpaired, because the runs happened at
different times). The rule:

    regressed  ⇔  ci_low > 1 + max_regression / 2   and   ci_high ≥ 1 + max_regression

in words: with 95 % confidence the run is slower by more than half the allowed regression, and a
slow-down of the allowed size is consistent with the data. Why not just "ci_low > 1": a 95 % interval
misses 1.0 on 2.5 % of noise-only runs, and CI runs every day — half the allowance is about four
standard errors away for any run with a usable interval, so noise alone does not fail a build. A real
regression of the allowed size or more fails once the rounds resolve it (its interval sits around
1 + max_regression); a small certain slow-down (+3 % ± 1 % against +10 % allowed) passes, and so does
a run too noisy to tell (its interval reaches below 1 + max_regression / 2; the table shows it). With
too few rounds for a 95 % interval nothing fails, and the table says so. A baseline of
another schema, another batch, or other models is an error, not a silent pass: results are matched by
label *and* model identity (content hash where the report has one, else MACs, parameters, input shape,
kind and pruned-ness), so a different model that happens to be called ``model.onnx`` is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from isodeploy.benchmarking.report import BenchReport, BenchResult, markdown_table
from isodeploy.benchmarking.stats import change_interval
from isodeploy.core.errors import IsodeployError


@dataclass
class GateRow:
    label: str
    runtime: str
    device: str
    base_p50_ms: float
    new_p50_ms: float
    change: float  # estimated new ÷ base − 1 (Hodges–Lehmann over the rounds)
    ci_low: float  # 95 % interval of new ÷ base
    ci_high: float
    confidence: float  # what the interval achieves (below 0.95: too few rounds to decide)
    regressed: bool
    n_base: int = 0
    n_new: int = 0

    @property
    def verdict(self) -> str:
        if self.regressed:
            return "REGRESSED"
        if self.confidence < 0.95 - 1e-9:
            return "ok (too few rounds to tell)"
        if self.ci_low > 1:
            return "ok (slower, within the allowed regression)"
        if self.change > 0:
            return "ok (within noise)"
        return "ok"


@dataclass
class GateResult:
    max_regression: float
    rows: list[GateRow] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.regressed for r in self.rows)


def parse_regression(text: str) -> float:
    """``10%`` → 0.10; ``0.1`` → 0.10; ``10`` (≥ 1, no sign) → 0.10 (a percentage)."""
    raw = str(text).strip()
    try:
        value = float(raw.rstrip("%").strip())
    except ValueError:
        raise IsodeployError(f"--max-regression '{text}' is not a number; write e.g. 10% or 0.1") from None
    fraction = value / 100 if raw.endswith("%") or value >= 1 else value
    if not math.isfinite(fraction) or not 0 <= fraction < 10:
        raise IsodeployError(f"--max-regression '{text}' is out of range; write e.g. 10% or 0.1")
    return fraction


def round_values(r: BenchResult) -> list[float]:
    """The values the gate compares: per-round medians, or every step when a report has fewer than 2 rounds."""
    rounds = [x for x in r.latency.rounds_ms if x > 0]
    return rounds if len(rounds) >= 2 else [x for x in r.latency.samples_ms if x > 0] or [r.latency.p50_ms]


def validate_baseline(report: BenchReport, name: str = "baseline") -> None:
    """Check a baseline before any benchmark runs: a damaged one is one line now, not a TypeError
    after minutes of measuring (the field checks are the bench-report reader's)."""
    from isodeploy.core.artifacts import validate_bench_results

    if not report.results:
        raise IsodeployError(f"{name} holds no results; re-create it with 'isodeploy bench --json'")
    validate_bench_results(report.results, name)
    for b in report.results:  # before measuring: a zero baseline can never be compared with
        if not b.latency.p50_ms > 0 or not min(round_values(b), default=0) > 0:
            raise IsodeployError(f"{name}'s {b.label} ({b.runtime}/{b.device}) has a zero latency, which no run can be compared "
                                 "with; re-create the baseline with 'isodeploy bench --json'")


IDENTITY_FIELDS = ("identity", "kind", "pruned", "macs", "params", "input_shape", "precision")


def model_mismatch(base: BenchResult, new: BenchResult) -> str | None:
    """Why ``base`` and ``new`` are not the same model (None when every recorded identity agrees)."""
    for name in IDENTITY_FIELDS:
        a, b = getattr(base, name, None), getattr(new, name, None)
        if a in (None, "", []) or b in (None, "", []):
            continue  # not recorded on one side: nothing to compare
        if name == "input_shape":  # the batch dimension is checked on its own
            a, b = list(a)[1:], list(b)[1:]
        if a != b:
            return f"{name} {a} in the baseline, {b} now"
    return None


def check_regression(current: BenchReport, baseline: BenchReport, max_regression: float, baseline_name: str = "baseline") -> GateResult:
    """Compare every result of ``current`` with its baseline twin; an unmatched result is an error."""
    base = {r.key: r for r in baseline.results}
    missing = [f"{r.label} ({r.runtime}/{r.device})" for r in current.results if r.key not in base]
    if missing:
        have = ", ".join(sorted({f"{r.label} ({r.runtime}/{r.device})" for r in baseline.results})) or "nothing"
        raise IsodeployError(f"{baseline_name} holds no result for {', '.join(missing)}; it has {have}: re-create the baseline with the same artifacts, runtimes and device")
    gate = GateResult(max_regression=max_regression)
    for r in current.results:
        b = base[r.key]
        mismatch = model_mismatch(b, r)
        if mismatch:
            raise IsodeployError(f"{baseline_name}'s {r.label} ({r.runtime}/{r.device}) is another model than this run's ({mismatch}); "
                                 "re-create the baseline from the same artifact")
        if b.batch != r.batch:
            raise IsodeployError(f"{baseline_name} measured {r.label} ({r.runtime}) at batch {b.batch}, this run at batch {r.batch}: pass --batch {b.batch} or re-create the baseline")
        if not b.latency.p50_ms > 0 or not min(round_values(b)) > 0:
            raise IsodeployError(f"{baseline_name}'s {r.label} ({r.runtime}/{r.device}) has a zero latency, which no run can be compared "
                                 "with; re-create the baseline with 'isodeploy bench --json'")
        base_values, new_values = round_values(b), round_values(r)
        iv = change_interval(new_values, base_values)
        decided = iv.confidence >= 0.95 - 1e-9
        gate.rows.append(GateRow(
            label=r.label, runtime=r.runtime, device=r.device, base_p50_ms=b.latency.p50_ms, new_p50_ms=r.latency.p50_ms,
            change=iv.value - 1, ci_low=iv.ci_low, ci_high=iv.ci_high, confidence=iv.confidence,
            regressed=decided and iv.ci_low > 1 + max_regression / 2 and iv.ci_high >= 1 + max_regression,
            n_base=len(base_values), n_new=len(new_values),
        ))
    return gate


GATE_COLUMNS = ("artifact", "runtime", "device", "baseline p50 ms", "p50 ms", "change", "95 % CI of new ÷ base", "rounds", "verdict")


def gate_rows(gate: GateResult) -> list[list[str]]:
    return [[r.label, r.runtime, r.device, f"{r.base_p50_ms:.2f}", f"{r.new_p50_ms:.2f}", f"{r.change * 100:+.1f} %",
             f"{r.ci_low:.3f}–{r.ci_high:.3f}" if r.confidence >= 0.95 - 1e-9 else "-", f"{r.n_new} vs {r.n_base}", r.verdict] for r in gate.rows]


def gate_markdown(gate: GateResult) -> str:
    return markdown_table(GATE_COLUMNS, gate_rows(gate))


def gate_table(gate: GateResult):
    """The regression gate's rows (baseline p50, p50, change, its 95 % interval, rounds, verdict) as a rich table."""
    from rich.table import Table

    table = Table(title=f"Regression gate (fails when the 95 % interval of new ÷ base lies above +{gate.max_regression * 50:.0f} % and reaches +{gate.max_regression * 100:.0f} %)")
    for col in GATE_COLUMNS:
        table.add_column(col, justify="left" if col in ("artifact", "runtime", "device", "verdict") else "right")
    for row, r in zip(gate_rows(gate), gate.rows):
        if r.regressed:
            row[-1] = f"[bold red]{row[-1]}[/bold red]"
        table.add_row(*row)
    return table
