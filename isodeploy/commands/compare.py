"""``isodeploy compare``: one table (and a latency-vs-MACs plot) for several models side by side."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from isodeploy.commands.bench import (
    BatchOption, BudgetOption, CompileOption, DeviceOption, ItersOption, MdOption, MemoryOption, MemoryRepeatsOption, PrecisionOption,
    ProtocolOption, RuntimeOption, ThreadsOption, WarmupOption, make_settings, out_console, progress_bar,
)
from isodeploy.commands.common import ImgSizeOption, check_report_paths, JsonOption, WeightsOption, write_json_atomic


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
    from isodeploy.benchmarking.compare import build_compare, compare_markdown, compare_table, footnotes, merge_reports, parse_accuracy
    from isodeploy.benchmarking.report import load_report, write_text_atomic
    from isodeploy.benchmarking.suite import run_bench

    from isodeploy.benchmarking.plot import FORMATS
    from isodeploy.commands.common import check_artifact_arguments

    check_artifact_arguments(artifacts, img_size)
    acc = parse_accuracy(accuracy)
    check_report_paths({"--json": json_path, "--md": md_path, "--plot": plot}, inputs=[*artifacts, weights],
                       suffixes={"--plot": tuple(FORMATS)})  # before measuring, not after
    saved = [a for a in artifacts if a.lower().endswith(".json")]
    fresh = [a for a in artifacts if not a.lower().endswith(".json")]
    reports = {a: load_report(Path(a)) for a in saved}  # validate saved reports before measuring anything
    if fresh:
        import os
        import tempfile

        settings = make_settings(runtime, device, batch, warmup, iters, threads, weights, img_size, memory, precision, memory_repeats, compile,
                                 protocol, budget)
        with tempfile.TemporaryDirectory(prefix=f"isodeploy-bench-{os.getpid()}-twins-") as tmp:
            items, roles = with_twins(fresh, Path(tmp), settings) if uniform_twin else (fresh, None)
            reports["__fresh__"] = run_bench(items, settings, progress=progress_bar, roles=roles)
    ordered = [reports["__fresh__"] if not a.lower().endswith(".json") else reports[a] for a in artifacts]
    ordered = list({id(r): r for r in ordered}.values())
    report = build_compare(merge_reports(ordered), acc)
    console = out_console()
    console.print(compare_table(report))
    if report.ratios:
        from isodeploy.benchmarking.ratios import ratio_table

        console.print("Ratios (Hodges–Lehmann estimate over paired rounds of the interleaved run, 95 % interval, verdict):")
        console.print(ratio_table(report.ratios), soft_wrap=True)
    for line in footnotes(report):
        console.print(f"[dim]- {line}[/dim]")
    if plot:
        from isodeploy.benchmarking.plot import plot_latency_vs_macs

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


def with_twins(artifacts: List[str], folder: Path, settings) -> tuple[list[str], list[str]]:
    """The artifacts plus one uniform twin per pruned folder (written under ``folder``), and each one's role."""
    from isodeploy.benchmarking.artifacts import resolve_artifact
    from isodeploy.benchmarking.twin import dense_of_folder, make_twin
    from isodeploy.pruning.spec import write_folder

    refs = [resolve_artifact(a, settings.img_size) for a in artifacts]
    sources: dict[str, str] = {}
    items, kinds = list(artifacts), [ref.kind for ref in refs]
    for a, ref in zip(artifacts, refs):
        if ref.kind != "folder":
            continue
        dense, spec = dense_of_folder(Path(a))  # any source kind; one line when it cannot be rebuilt
        sources[dense.timm_name] = a
        result, _ = make_twin(dense, int(spec["macs"]["after"]))
        out = write_folder(folder / f"{Path(a).resolve().name}-uniform-twin", result.loaded.model, result.spec)
        items.append(str(out))  # twins go after every given artifact: the first one stays the reference
        kinds.append("uniform-twin")
    if not sources:
        from isodeploy.core.errors import IsodeployError

        raise IsodeployError("--uniform-twin needs at least one pruned isodeploy folder among the artifacts")
    roles = []
    for a, kind in zip(items, kinds):
        if kind in ("onnx", "plan"):
            roles.append("")
            continue
        if kind != "model":
            roles.append("pruned" if kind == "folder" else kind)
            continue
        from isodeploy.loading import resolve

        roles.append("dense" if resolve(a).timm_name in sources else "standard")
    return items, roles


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
