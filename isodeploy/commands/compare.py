"""``isodeploy compare``: one table (and a latency-vs-MACs plot) for several models side by side."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from isodeploy.commands.bench import (
    BatchOption, BudgetOption, CompileOption, DeviceOption, ItersOption, MdOption, MemoryOption, MemoryRepeatsOption, PrecisionOption,
    ProtocolOption, RuntimeOption, ThreadsOption, WarmupOption, bench_options, out_console, progress_bar,
)
from isodeploy.commands.common import ImgSizeOption, check_report_paths, JsonOption, WeightsOption


def compare(
    artifacts: List[str] = typer.Argument(..., help="Models, isodeploy folders, .onnx/.plan files, or saved 'bench --json' reports; the first is the reference."),
    runtime: List[str] = RuntimeOption,
    device: Optional[str] = DeviceOption,
    batch: Optional[int] = BatchOption,
    protocol: Optional[str] = ProtocolOption,
    budget: Optional[float] = BudgetOption,
    warmup: Optional[int] = WarmupOption,
    iters: Optional[int] = ItersOption,
    threads: Optional[int] = ThreadsOption,
    weights: str = WeightsOption,
    img_size: Optional[int] = ImgSizeOption,
    memory: bool = MemoryOption,
    precision: str = PrecisionOption,
    memory_repeats: int = MemoryRepeatsOption,
    compile: bool = CompileOption,
    accuracy: List[str] = typer.Option([], "--accuracy", help="NAME=TOP1 to show accuracy, e.g. deit_small_patch16_224=79.9 (repeatable)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a latency-vs-MACs plot (.png, .svg or .pdf)."),
    uniform_twin: bool = typer.Option(False, "--uniform-twin", help="For every pruned isodeploy folder, also build and bench its uniform twin: "
                                      "same depth, every class cut by one ratio, the same MACs (±1 %)."),
    json_path: Optional[Path] = JsonOption,
    md_path: Optional[Path] = MdOption,
) -> None:
    """Compare MACs, params, latency per runtime/device, peak memory and accuracy; pruned vs uniform models."""
    from isodeploy import api
    from isodeploy.commands.common import check_artifact_arguments

    check_artifact_arguments(artifacts, img_size)
    acc = api.parse_accuracy(accuracy)
    check_report_paths({"--json": json_path, "--md": md_path, "--plot": plot}, inputs=[*artifacts, weights],
                       suffixes={"--plot": tuple(api.PLOT_FORMATS)})  # before measuring, not after
    options = bench_options(runtime, device, batch, warmup, iters, threads, weights, img_size, memory, precision, memory_repeats, compile,
                            protocol, budget)
    report = api.compare(artifacts, **options, accuracy=acc, uniform_twin=uniform_twin, progress=progress_bar)
    console = out_console()
    console.print(api.compare_table(report))
    if report.ratios:
        console.print("Ratios (Hodges–Lehmann estimate over paired rounds of the interleaved run, 95 % interval, verdict):")
        console.print(api.ratio_table(report.ratios), soft_wrap=True)
    for line in api.compare_notes(report):
        console.print(f"[dim]- {line}[/dim]")
    if plot:
        api.plot_latency_vs_macs(report, plot)
        console.print(f"plot: {plot}")
    api.write_compare_files(report, json_path=json_path, md_path=md_path, plot=plot)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
