"""Benchmark results as plain dataclasses: JSON round-trip, statistics, and tables.

A bench JSON is both a report and a CI baseline, so it carries a schema tag, the environment and the
settings, and loading validates them instead of trusting any JSON file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError

SCHEMA = "isodeploy.bench/1"
NOISY_CV = 0.05  # a run whose coefficient of variation exceeds 5 % is flagged as noisy


@dataclass
class LatencyStats:
    """Per-step latency of one artifact on one runtime (milliseconds per batch)."""

    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    std_ms: float
    cv: float
    throughput_ips: float  # images per second: batch / mean step time
    noisy: bool
    iters: int
    samples_ms: list[float] = field(default_factory=list)
    #: median of each interleaved round (A B C A B C …): the unit ratios and their intervals are computed from
    rounds_ms: list[float] = field(default_factory=list)
    #: the interleaved round each of ``rounds_ms`` came from (adaptive runs ration some artifacts to fewer rounds)
    round_ids: list[int] = field(default_factory=list)
    #: 95 % interval of the typical step (Hodges–Lehmann over per-round medians): the plot's error bars
    ci_low_ms: float | None = None
    ci_high_ms: float | None = None
    ci_confidence: float | None = None

    @classmethod
    def from_samples(cls, samples_ms: list[float], batch: int, rounds: list[list[float]] | None = None,
                     round_ids: list[int] | None = None) -> "LatencyStats":
        """Summarise timed steps; percentiles interpolate linearly between order statistics."""
        if not samples_ms:
            raise ValueError("no latency samples")
        xs = sorted(samples_ms)
        n = len(xs)
        mean = sum(xs) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
        cv = std / mean if mean > 0 else 0.0
        kept = [(i, r) for i, r in zip(round_ids if round_ids is not None else range(len(rounds or [])), rounds or []) if r]
        medians = [percentile(sorted(r), 50) for _, r in kept]
        low = high = conf = None
        if len(medians) >= 2:
            from isodeploy.benchmarking.stats import location_interval

            iv = location_interval(medians)
            low, high, conf = iv.ci_low, iv.ci_high, iv.confidence
        return cls(
            mean_ms=mean, p50_ms=percentile(xs, 50), p90_ms=percentile(xs, 90), p99_ms=percentile(xs, 99),
            std_ms=std, cv=cv, throughput_ips=batch * 1000.0 / mean if mean > 0 else 0.0,
            noisy=cv > NOISY_CV, iters=n, samples_ms=list(samples_ms),
            rounds_ms=medians, round_ids=[i for i, _ in kept], ci_low_ms=low, ci_high_ms=high, ci_confidence=conf,
        )


def percentile(sorted_xs: list[float], q: float) -> float:
    pos = (len(sorted_xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


@dataclass
class MemoryFigure:
    """Peak memory of running one artifact, and how it was measured (the methods differ by runtime)."""

    peak_mb: float
    baseline_mb: float | None = None
    delta_mb: float | None = None  # peak − baseline: what loading and running the artifact added
    method: str = ""
    method_id: str = ""  # cpu-peak-rss-fresh-process | cuda-mem-get-info-fresh-process: one per device, every runtime
    samples_mb: list[float] = field(default_factory=list)  # delta of each repeat (fresh process each)
    pids: list[int] = field(default_factory=list)  # the probe processes, to show each figure came from a fresh one


@dataclass
class BenchResult:
    """One artifact on one runtime and device."""

    artifact: str  # as given on the command line
    label: str  # stable name used to match baselines: timm name, folder or file name
    kind: str  # model | folder | onnx | plan
    pruned: bool
    runtime: str  # torch | ort | trt
    device: str  # cpu | cuda
    precision: str
    batch: int
    threads: int | None
    input_shape: list[int]
    latency: LatencyStats
    memory: MemoryFigure | None = None
    macs: int | None = None  # per image
    params: int | None = None
    timing: str = ""  # how the steps were timed
    notes: list[str] = field(default_factory=list)
    #: dense | pruned | uniform-twin | standard | "" — what the artifact is in a pruned-vs-uniform comparison
    role: str = ""
    compiled: bool = False  # torch.compile
    warmup_steps: int = 0  # untimed steps before the first timed round (adaptive: as many as its warm-up time took)

    @property
    def variant(self) -> str:
        """runtime plus what sets it apart from the runtime's default (``torch+fp16+compile``)."""
        default = "fp16" if self.runtime == "trt" else "fp32"
        return self.runtime + (f"+{self.precision}" if self.precision != default else "") + ("+compile" if self.compiled else "")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.label, self.variant, self.device)


@dataclass
class BenchReport:
    results: list[BenchResult]
    env: dict[str, Any]
    settings: dict[str, Any]
    created: str = ""
    notes: list[str] = field(default_factory=list)
    schema: str = SCHEMA
    #: pruned/uniform/dense ratios with their intervals over paired rounds (see :mod:`isodeploy.benchmarking.ratios`)
    ratios: list[dict[str, Any]] = field(default_factory=list)
    #: how it measured: the protocol, why timing stopped, steps per artifact (see :func:`isodeploy.benchmarking.suite.protocol_record`)
    protocol: dict[str, Any] = field(default_factory=dict)
    #: load average before/after and the cores other processes used while timing
    load: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def report_from_dict(data: Any, source: str = "report") -> BenchReport:
    """Rebuild a report, failing with one line when the JSON is not a bench report of this schema."""
    if not isinstance(data, dict) or "schema" not in data:
        raise IsodeployError(f"'{source}' is not an isodeploy bench report (no 'schema' field); write one with 'isodeploy bench ... --json PATH'")
    if data["schema"] != SCHEMA:
        raise IsodeployError(f"'{source}' has schema '{data['schema']}', expected '{SCHEMA}'; re-create it with this isodeploy version's 'bench --json'")
    from isodeploy.core.artifacts import validate_bench_dict

    validate_bench_dict(data, f"'{source}'")  # the JSON shape first: lists and objects where expected
    try:
        results = []
        for item in data["results"]:
            item = dict(item)
            item["latency"] = _build(LatencyStats, item["latency"])
            if item.get("memory"):
                item["memory"] = _build(MemoryFigure, item["memory"])
            results.append(_build(BenchResult, item))
        report = _build(BenchReport, {**data, "results": results})
    except (KeyError, TypeError) as exc:
        raise IsodeployError(f"'{source}' is a damaged bench report (missing or wrong field {exc}); re-create it with 'isodeploy bench --json'") from exc
    from isodeploy.core.artifacts import validate_bench_results

    validate_bench_results(report.results, f"'{source}'")  # types and ranges of what every consumer computes with
    return report


def load_report(path: Path) -> BenchReport:
    path = Path(path)
    if not path.is_file():
        raise IsodeployError(f"bench report '{path}' does not exist")
    from isodeploy.core.jsonread import read_json_file  # bounded: depth, size, one line

    data = read_json_file(path, "bench report", "re-create it with 'isodeploy bench --json'")
    return report_from_dict(data, str(path))


def fmt_macs(macs: int | None) -> str:
    return "-" if macs is None else f"{macs / 1e9:.2f} G"


def fmt_params(params: int | None) -> str:
    return "-" if params is None else f"{params / 1e6:.2f} M"


def fmt_mem(mem: MemoryFigure | None) -> str:
    if mem is None:
        return "-"
    if mem.delta_mb is not None:
        return f"{mem.peak_mb:.0f} MB (+{mem.delta_mb:.0f})"
    return f"{mem.peak_mb:.0f} MB"


RESULT_COLUMNS = ("artifact", "runtime", "device", "batch", "MACs", "params", "mean ms", "p50 ms", "p90 ms", "p99 ms", "CV", "img/s", "peak memory")


def result_columns(results: list[BenchResult]) -> tuple[str, ...]:
    """The table's columns; a ``role`` column only when the run says what each artifact is."""
    if any(r.role for r in results):
        return RESULT_COLUMNS[:1] + ("role",) + RESULT_COLUMNS[1:]
    return RESULT_COLUMNS


def result_row(r: BenchResult, with_role: bool = False) -> list[str]:
    lat = r.latency
    cv = f"{lat.cv * 100:.1f} %" + (" noisy" if lat.noisy else "")
    return [r.label] + ([r.role or "-"] if with_role else []) + [
        r.variant, r.device, str(r.batch), fmt_macs(r.macs), fmt_params(r.params),
        f"{lat.mean_ms:.2f}", f"{lat.p50_ms:.2f}", f"{lat.p90_ms:.2f}", f"{lat.p99_ms:.2f}", cv,
        f"{lat.throughput_ips:.1f}", fmt_mem(r.memory),
    ]


def markdown_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def protocol_line(report: BenchReport) -> str:
    """How the run measured and why it stopped, in one sentence (older reports: their step counts)."""
    p = report.protocol or {}
    if not p.get("description"):
        s = report.settings
        return f"{s.get('warmup')} warm-up + {s.get('iters')} timed steps."
    stop = p.get("stop") or {}
    return f"{p['description']}; stopped after {stop.get('rounds')} rounds ({stop.get('reason')}, {stop.get('elapsed_s')} s)."


def measurement_notes(results: list[BenchResult]) -> list[str]:
    """One line per distinct memory method and timing method, so a reader knows what the figures mean."""
    lines: list[str] = []
    for text in dict.fromkeys(r.timing for r in results if r.timing):
        lines.append(f"timing: {text}")
    for text in dict.fromkeys(r.memory.method for r in results if r.memory and r.memory.method):
        lines.append(f"memory: {text}")
    if any(r.latency.rounds_ms for r in results):
        n = max(len(r.latency.rounds_ms) for r in results)
        lines.append(f"rounds: the timed steps ran in up to {n} interleaved rounds after every artifact's warm-up; ratios pair round i "
                     "with round i: Hodges–Lehmann estimate with a Wilcoxon signed-rank 95 % interval, the verdict from the interval")
    return lines


def rich_table(results: list[BenchResult], title: str = "Latency"):
    """The bench results as a rich table (latency percentiles, CV, img/s, memory, MACs) for the terminal."""
    from rich.table import Table

    table = Table(title=title)
    cols = result_columns(results)
    for col in cols:
        table.add_column(col, justify="left" if col in ("artifact", "role", "runtime", "device") else "right")
    cv = cols.index("CV")
    for r in results:
        row = result_row(r, "role" in cols)
        if r.latency.noisy:
            row[cv] = f"[yellow]{row[cv]}[/yellow]"
        table.add_row(*row)
    return table


def write_text_atomic(path: Path, text: str) -> None:
    """Write text through a temp file in the same folder, then rename (never onto a link or a special file)."""
    from isodeploy.core.safe_write import write_text_atomic as write

    write(Path(path), text)
