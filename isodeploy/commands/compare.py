"""``isodeploy compare``: one table (and a latency-vs-MACs plot) for several models side by side."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from isodeploy.commands.bench import (
    BatchOption, DeviceOption, ItersOption, MdOption, MemoryOption, PrecisionOption, RuntimeOption, ThreadsOption,
    WarmupOption, make_settings, out_console, progress_bar,
)
from isodeploy.commands.common import ImgSizeOption, JsonOption, WeightsOption, write_json_atomic


def compare(
    artifacts: List[str] = typer.Argument(..., help="Models, isodeploy folders, .onnx/.plan files, or saved 'bench --json' reports; the first is the reference."),
    runtime: List[str] = RuntimeOption,
    device: Optional[str] = DeviceOption,
    batch: Optional[int] = BatchOption,
    warmup: int = WarmupOption,
    iters: int = ItersOption,
    threads: Optional[int] = ThreadsOption,
    weights: str = WeightsOption,
    img_size: Optional[int] = ImgSizeOption,
    memory: bool = MemoryOption,
    precision: str = PrecisionOption,
    accuracy: List[str] = typer.Option([], "--accuracy", help="NAME=TOP1 to show accuracy, e.g. deit_small_patch16_224=79.9 (repeatable)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a latency-vs-MACs plot (.png, .svg or .pdf)."),
    json_path: Optional[Path] = JsonOption,
    md_path: Optional[Path] = MdOption,
) -> None:
    """Compare MACs, params, latency per runtime/device, peak memory and accuracy; pruned vs uniform models."""
    from isodeploy.bench.compare import build_compare, compare_markdown, compare_table, footnotes, merge_reports, parse_accuracy
    from isodeploy.bench.report import load_report, write_text_atomic
    from isodeploy.bench.suite import run_bench

    acc = parse_accuracy(accuracy)
    saved = [a for a in artifacts if a.lower().endswith(".json")]
    fresh = [a for a in artifacts if not a.lower().endswith(".json")]
    reports = {a: load_report(Path(a)) for a in saved}  # validate saved reports before measuring anything
    if fresh:
        settings = make_settings(runtime, device, batch, warmup, iters, threads, weights, img_size, memory, precision)
        reports["__fresh__"] = run_bench(fresh, settings, progress=progress_bar)
    ordered = [reports["__fresh__"] if not a.lower().endswith(".json") else reports[a] for a in artifacts]
    ordered = list({id(r): r for r in ordered}.values())
    report = build_compare(merge_reports(ordered), acc)
    console = out_console()
    console.print(compare_table(report))
    for line in footnotes(report):
        console.print(f"[dim]- {line}[/dim]")
    if plot:
        from isodeploy.bench.plot import plot_latency_vs_macs

        plot_latency_vs_macs(report, plot)
        console.print(f"plot: {plot}")
    if json_path:
        write_json_atomic(json_path, report.to_dict())
    if md_path:
        text = compare_markdown(report)
        if plot:
            import os

            text += f"\n![latency vs MACs]({os.path.relpath(plot, md_path.parent)})\n"
        write_text_atomic(md_path, text)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
