"""A bench report as Markdown: the results table, the ratios with their intervals, and the notes.

Apart from :mod:`isodeploy.benchmarking.report` (the data and its reader) because the ratios table
lives in :mod:`isodeploy.benchmarking.ratios`, which itself builds on the report's data classes.
"""

from __future__ import annotations

from isodeploy.benchmarking.ratios import ratio_table
from isodeploy.benchmarking.report import BenchReport, markdown_table, measurement_notes, protocol_line, result_columns, result_row


def to_markdown(report: BenchReport, title: str = "Benchmark") -> str:
    from isodeploy.benchmarking.envinfo import describe_machine

    s = report.settings
    out = [f"# {title}", "", f"Machine: {describe_machine(report.env)}.",
           f"Settings: batch {s.get('batch')}, threads {s.get('threads')}; {protocol_line(report)}", ""]
    cols = result_columns(report.results)
    out.append(markdown_table(cols, [result_row(r, "role" in cols) for r in report.results]))
    out.append("")
    if report.ratios:
        out += ["Ratios (median of per-round ratios, with their spread):", "", ratio_table(report.ratios), ""]
    out += [f"- {line}" for line in measurement_notes(report.results) + report.notes]
    return "\n".join(out) + "\n"
