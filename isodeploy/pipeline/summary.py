"""The final summary table of ``prune-export``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_summary(console: Console, result) -> None:
    """Print a finished ``prune-export``: each stage's status and seconds, the headline verdict, where the report is."""
    data = result.report
    table = Table(title=f"prune-export {data['query']} → {result.folder}")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    macs, params = data.get("macs") or {}, data.get("params") or {}
    if macs:
        table.add_row("MACs", f"{macs['before'] / 1e9:.3f} G → {macs['after'] / 1e9:.3f} G ({macs['after'] / macs['before']:.1%})")
        table.add_row("params", f"{params['before'] / 1e6:.2f} M → {params['after'] / 1e6:.2f} M")
    if data.get("latency_budget"):
        from isodeploy.pruning.report import latency_line

        table.add_row("latency budget", latency_line(data["latency_budget"]))
    for row in data.get("latency", []):
        table.add_row(f"latency {row['artifact']} ({row['runtime']} {row['device']}, batch {row['batch']})",
                      f"p50 {row['p50_ms']:.2f} ms" + (" (noisy)" if row.get("noisy") else ""))
    for name, v in data.get("numerics", {}).items():
        table.add_row(f"numerics: {name}", "passed" if v.get("passed") else "FAILED")
    for s in data.get("skipped", []):
        table.add_row(f"skipped: {s['stage']}", s["why"])
    table.add_row("weights", "random (accuracy meaningless)" if data.get("random_weights") else str(data.get("weights")))
    table.add_row("report", f"{result.folder}/report.md")
    table.add_row("artifacts", ", ".join(data.get("artifacts", [])))
    console.print(table)
