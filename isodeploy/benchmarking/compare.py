"""Side-by-side comparison of models: MACs, params, latency per runtime/device, memory, accuracy.

The point of the tool: a non-uniformly pruned model and a uniform model of the same MACs can have
very different latency. Each row carries its speed-up and MAC reduction against the first artifact
(the reference), so "is it as fast as its MACs say?" is one glance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from isodeploy.benchmarking.envinfo import describe_machine
from isodeploy.benchmarking.report import BenchReport, BenchResult, fmt_macs, fmt_params, markdown_table
from isodeploy.core.errors import IsodeployError

SCHEMA = "isodeploy.compare/1"


@dataclass
class CompareRow:
    label: str
    artifact: str
    pruned: bool
    macs: int | None
    params: int | None
    accuracy: float | None = None
    #: "runtime/device" → p50 ms per batch, images/s, peak-memory (MB; the figure's delta where known)
    latency_ms: dict[str, float] = field(default_factory=dict)
    throughput_ips: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    noisy: dict[str, bool] = field(default_factory=dict)
    #: "runtime/device" → (low, high) ms: the 95 % interval of the typical step, over rounds (plot error bars)
    latency_ci_ms: dict[str, list[float]] = field(default_factory=dict)
    #: reference p50 / this p50 ("runtime/device" → ×), and reference MACs / these MACs
    speedup: dict[str, float] = field(default_factory=dict)
    mac_reduction: float | None = None
    role: str = ""  # dense | pruned | uniform-twin | standard, when the run said

    @property
    def kind(self) -> str:
        return self.role or ("pruned" if self.pruned else "uniform")


@dataclass
class CompareReport:
    rows: list[CompareRow]
    reference: str
    batch: int
    env: dict[str, Any]
    settings: dict[str, Any]
    bench: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    schema: str = SCHEMA
    ratios: list[dict[str, Any]] = field(default_factory=list)  # with spreads, see isodeploy.benchmarking.ratios

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(k for row in self.rows for k in row.latency_ms))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_accuracy(items: list[str]) -> dict[str, float]:
    """``["deit_b=81.8", ...]`` → {"deit_b": 81.8}; one clear line on a malformed item."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = float(value.rstrip("%"))
        except ValueError:
            raise IsodeployError(f"--accuracy '{item}' must be NAME=VALUE, e.g. deit_small_patch16_224=79.9") from None
    return out


def build_compare(bench: BenchReport, accuracy: dict[str, float] | None = None) -> CompareReport:
    """Fold per-runtime bench results into one row per artifact, in the order first seen."""
    rows: dict[str, CompareRow] = {}
    for r in bench.results:
        row = rows.get(r.label)
        if row is None:
            row = rows[r.label] = CompareRow(label=r.label, artifact=r.artifact, pruned=r.pruned, macs=r.macs, params=r.params,
                                             role=getattr(r, "role", ""))
        key = f"{r.variant}/{r.device}"
        row.latency_ms[key] = r.latency.p50_ms
        row.throughput_ips[key] = r.latency.throughput_ips
        row.noisy[key] = r.latency.noisy
        if r.latency.ci_low_ms is not None and r.latency.ci_high_ms is not None and (r.latency.ci_confidence or 0) >= 0.95 - 1e-9:
            row.latency_ci_ms[key] = [r.latency.ci_low_ms, r.latency.ci_high_ms]
        if r.memory is not None:
            row.peak_memory_mb[key] = r.memory.delta_mb if r.memory.delta_mb is not None else r.memory.peak_mb
    ordered = list(rows.values())
    _attach_accuracy(ordered, accuracy or {})
    ref = ordered[0]
    for row in ordered:
        for key, ms in row.latency_ms.items():
            if key in ref.latency_ms and ms > 0:
                row.speedup[key] = ref.latency_ms[key] / ms
        if ref.macs and row.macs:
            row.mac_reduction = ref.macs / row.macs
    batches = sorted({r.batch for r in bench.results})
    notes = list(bench.notes)
    if len(batches) > 1:
        notes.append(f"results come from different batch sizes ({', '.join(map(str, batches))}): latencies are not comparable across them")
    return CompareReport(rows=ordered, reference=ref.label, batch=batches[0], env=bench.env, settings=bench.settings,
                         bench=bench.to_dict(), notes=notes, ratios=list(bench.ratios))


def _attach_accuracy(rows: list[CompareRow], accuracy: dict[str, float]) -> None:
    for name, value in accuracy.items():
        hits = [r for r in rows if name in (r.label, r.artifact, Path(r.artifact).name)]
        if not hits:
            raise IsodeployError(f"--accuracy names '{name}', which is none of the compared artifacts: {', '.join(r.label for r in rows)}")
        for r in hits:
            r.accuracy = value


def merge_reports(reports: list[BenchReport]) -> BenchReport:
    """One report from several (fresh runs and saved bench JSONs); the first one's environment wins."""
    first = reports[0]
    results: list[BenchResult] = [r for rep in reports for r in rep.results]
    notes = list(dict.fromkeys(n for rep in reports for n in rep.notes))
    machines = {describe_machine(rep.env) for rep in reports}
    if len(machines) > 1:
        notes.append(f"results come from different machines ({'; '.join(sorted(machines))}): compare within a machine only")
    ratios = [x for rep in reports for x in rep.ratios]
    protocol = dict(first.protocol)
    if len(reports) > 1:  # each interleaved run (one per runtime on a GPU) stopped on its own
        protocol["runs"] = [rep.protocol for rep in reports]
    return BenchReport(results=results, env=first.env, settings=first.settings, created=first.created, notes=notes, ratios=ratios,
                       protocol=protocol, load=dict(first.load))


def table_rows(report: CompareReport) -> tuple[list[str], list[list[str]]]:
    cols = report.columns
    header = ["artifact", "kind", "MACs", "params", "MACs ÷"]
    for key in cols:
        header += [f"p50 ms {key}", f"speed-up {key}", f"img/s {key}"]
    mem_cols = list(dict.fromkeys(k for row in report.rows for k in row.peak_memory_mb))
    header += [f"mem MB {key}" for key in mem_cols]
    header.append("top-1 %")
    body = []
    for row in report.rows:
        line = [row.label, row.kind, fmt_macs(row.macs), fmt_params(row.params),
                f"{row.mac_reduction:.2f}×" if row.mac_reduction else "-"]
        for key in cols:
            if key in row.latency_ms:
                mark = " ~" if row.noisy.get(key) else ""
                line += [f"{row.latency_ms[key]:.2f}{mark}", f"{row.speedup[key]:.2f}×" if key in row.speedup else "-", f"{row.throughput_ips[key]:.1f}"]
            else:
                line += ["-", "-", "-"]
        line += [f"{row.peak_memory_mb[k]:.0f}" if k in row.peak_memory_mb else "-" for k in mem_cols]
        line.append("-" if row.accuracy is None else f"{row.accuracy:.2f}")
        body.append(line)
    return header, body


def footnotes(report: CompareReport) -> list[str]:
    """The lines under a comparison: protocol, machine load, what each column means and what was skipped."""
    lines = [
        f"Machine: {describe_machine(report.env)}; batch {report.batch}.",
        f"Speed-up and MACs ÷ are relative to {report.reference} (the first artifact); p50 latency per batch; '~' marks a noisy run (CV > 5 %).",
        "kind: pruned = an isodeploy folder (non-uniform widths), uniform = a stock timm model, uniform-twin = every class cut by one ratio to the pruned MACs.",
        "mem MB: what the model adds at peak, one method per device for every runtime, each in a fresh process at the batch measured: "
        "CPU = peak RSS minus the RSS after importing the runtime; CUDA = device memory in use (cudaMemGetInfo) after loading and running minus before loading (weights, activations, workspaces, allocator caches, I/O).",
    ]
    return lines + report.notes


def compare_markdown(report: CompareReport, title: str = "Comparison") -> str:
    header, body = table_rows(report)
    out = [f"# {title}", "", markdown_table(header, body), ""]
    if report.ratios:
        from isodeploy.benchmarking.ratios import ratio_table

        out += ["Ratios (Hodges–Lehmann estimate over paired rounds of the interleaved run, 95 % interval, verdict):", "", ratio_table(report.ratios), ""]
    out += [f"- {line}" for line in footnotes(report)]
    return "\n".join(out) + "\n"


def compare_table(report: CompareReport):
    """The comparison (MACs, params, latency per runtime/device, memory, accuracy) as a rich table."""
    from rich.table import Table

    header, body = table_rows(report)
    table = Table(title="Comparison")
    for col in header:
        table.add_column(col, justify="left" if col in ("artifact", "kind") else "right")
    for line in body:
        table.add_row(*line)
    return table
