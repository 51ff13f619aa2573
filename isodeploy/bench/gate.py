"""CI regression gate: is this run's p50 latency worse than a baseline's beyond what noise explains?

Rule, per (artifact label, runtime, device), with Δ = p50_new − p50_base:

    regressed  ⇔  Δ > max_regression · p50_base   and   Δ > noise,
    noise      =  1.58 · (IQR_base / √n_base + IQR_new / √n_new)

``1.58 · IQR / √n`` is the half-width of a notched box plot's notch (McGill, Tukey & Larsen 1978),
a robust ~95 % interval for a median; two medians whose notches do not overlap differ by more than
their sampling noise. So the slow-down must exceed the allowed fraction *and* be a real shift of
the median: a 12 % slower p50 from runs that wander by ±20 % does not fail the build, a 2× slower
model always does. Reports without samples fall back to (p90 − p50) per run. A baseline of another
schema, another batch, or other models is an error, not a silent pass: results are matched by label
*and* model identity (content hash where the report has one, else MACs, parameters, input shape,
kind and pruned-ness), so a different model that happens to be called ``model.onnx`` is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from isodeploy.bench.report import BenchReport, BenchResult, markdown_table, percentile
from isodeploy.errors import IsodeployError


@dataclass
class GateRow:
    label: str
    runtime: str
    device: str
    base_p50_ms: float
    new_p50_ms: float
    change: float  # (new − base) / base
    noise_ms: float
    regressed: bool

    @property
    def verdict(self) -> str:
        if self.regressed:
            return "REGRESSED"
        if self.change > 0 and self.new_p50_ms - self.base_p50_ms <= self.noise_ms:
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


NOTCH = 1.58  # notched box plot: median ± 1.58·IQR/√n


def median_noise(r: BenchResult) -> float:
    """Half-width of the ~95 % notch around this run's p50 (ms)."""
    xs = sorted(r.latency.samples_ms)
    if len(xs) < 4:
        return max(r.latency.p90_ms - r.latency.p50_ms, 0.0)
    iqr = percentile(xs, 75) - percentile(xs, 25)
    return NOTCH * iqr / len(xs) ** 0.5


def validate_baseline(report: BenchReport, name: str = "baseline") -> None:
    """Check a baseline before any benchmark runs: a damaged one is one line now, not a TypeError
    after minutes of measuring (the field checks are the bench-report reader's)."""
    from isodeploy.core.artifacts import validate_bench_results

    if not report.results:
        raise IsodeployError(f"{name} holds no results; re-create it with 'isodeploy bench --json'")
    validate_bench_results(report.results, name)


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
        delta = r.latency.p50_ms - b.latency.p50_ms
        noise = median_noise(b) + median_noise(r)
        change = delta / b.latency.p50_ms if b.latency.p50_ms > 0 else 0.0
        gate.rows.append(GateRow(
            label=r.label, runtime=r.runtime, device=r.device, base_p50_ms=b.latency.p50_ms, new_p50_ms=r.latency.p50_ms,
            change=change, noise_ms=noise, regressed=delta > max_regression * b.latency.p50_ms and delta > noise,
        ))
    return gate


GATE_COLUMNS = ("artifact", "runtime", "device", "baseline p50 ms", "p50 ms", "change", "noise ms", "verdict")


def gate_rows(gate: GateResult) -> list[list[str]]:
    return [[r.label, r.runtime, r.device, f"{r.base_p50_ms:.2f}", f"{r.new_p50_ms:.2f}", f"{r.change * 100:+.1f} %", f"{r.noise_ms:.2f}", r.verdict] for r in gate.rows]


def gate_markdown(gate: GateResult) -> str:
    return markdown_table(GATE_COLUMNS, gate_rows(gate))


def gate_table(gate: GateResult):
    from rich.table import Table

    table = Table(title=f"Regression gate (max +{gate.max_regression * 100:.0f} % p50, beyond noise)")
    for col in GATE_COLUMNS:
        table.add_column(col, justify="left" if col in ("artifact", "runtime", "device", "verdict") else "right")
    for row, r in zip(gate_rows(gate), gate.rows):
        if r.regressed:
            row[-1] = f"[bold red]{row[-1]}[/bold red]"
        table.add_row(*row)
    return table
