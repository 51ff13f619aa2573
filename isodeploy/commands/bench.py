"""``isodeploy bench``: latency, throughput, peak memory and MACs of artifacts, with an optional CI gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from isodeploy.commands.common import ImgSizeOption, check_report_paths, JsonOption, WeightsOption, write_json_atomic
from isodeploy.core.errors import ExitCode, IsodeployError

ARTIFACT_HELP = "Alias, timm model name, isodeploy output folder, .onnx or .plan (several allowed)."
RuntimeOption = typer.Option(["torch"], "--runtime", "-r", help="torch | ort (onnxruntime) | trt (TensorRT); repeat or comma-separate for several.")
DeviceOption = typer.Option(None, "--device", "-d", help="cpu | cuda (default: cuda for --runtime trt, else cpu).")
BatchOption = typer.Option(None, "--batch", "-b", help="Images per step (default: 256 on cuda, 8 on cpu, as in the paper).")
WarmupOption = typer.Option(None, "--warmup", help="Untimed warm-up steps per artifact (giving it fixes the protocol: default 20 with --protocol fixed).")
ItersOption = typer.Option(None, "--iters", help="Timed steps per artifact in 10 interleaved rounds (giving it fixes the protocol: default 100).")
ProtocolOption = typer.Option(None, "--protocol", "--bench-protocol", help=(
    "adaptive (default): warm up by time, then interleaved rounds until every headline ratio's 95 % interval is within ±2 %, "
    "or --budget runs out · paper: the paper's 20 warm-up + 100 timed steps · fixed: the --warmup/--iters you give."))
BudgetOption = typer.Option(None, "--budget", "--bench-budget", help="Seconds the adaptive protocol may spend warming up and timing (default 120).")
ThreadsOption = typer.Option(None, "--threads", help="CPU threads for torch and onnxruntime intra-op (default: all usable cores).")
MdOption = typer.Option(None, "--md", help="Also write the report as Markdown to this path.")
MemoryOption = typer.Option(True, "--memory/--no-memory", help="Measure peak memory (CPU: a fresh subprocess per artifact and runtime).")
PrecisionOption = typer.Option("fp32", "--precision", help="fp32 | fp16 (torch on cuda only; engines keep their own precision).")
MemoryRepeatsOption = typer.Option(1, "--memory-repeats", help="Fresh-process memory probes per artifact (≥ 2 gives memory ratios a spread).")
CompileOption = typer.Option(False, "--compile", help="torch.compile the torch runner (compiled during the warm-up steps).")


def split_runtimes(values: List[str]) -> tuple[str, ...]:
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def make_settings(runtime: List[str], device: Optional[str], batch: Optional[int], warmup: Optional[int], iters: Optional[int],
                  threads: Optional[int], weights: str, img_size: Optional[int], memory: bool, precision: str,
                  memory_repeats: int = 1, compile: bool = False, protocol: Optional[str] = None, budget: Optional[float] = None) -> Any:
    from isodeploy.benchmarking.suite import BenchSettings

    return BenchSettings(runtimes=split_runtimes(runtime), device=device, batch=batch, warmup=warmup, iters=iters,
                         threads=threads, weights=weights, img_size=img_size, memory=memory, precision=precision,
                         memory_repeats=memory_repeats, compile=compile, protocol=protocol, budget_s=budget).resolved()


def progress_bar() -> Any:
    """Progress on stderr (rich on a terminal, plain lines with ETA in logs), so tables on stdout stay clean for pipes."""
    from isodeploy.benchmarking.progress import make_reporter

    return make_reporter()


def out_console() -> Any:
    """stdout console; when piped (CI logs), wide enough that tables are not squeezed to 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=220)


def check_baseline_keys(baseline: Any, artifacts: List[str], settings: Any, name: str) -> None:
    """Fail before measuring when the baseline cannot cover these artifacts on these runtimes."""
    from isodeploy.benchmarking.artifacts import resolve_artifact, runtimes_for

    have = {r.key for r in baseline.results}
    for query in artifacts:
        ref = resolve_artifact(query, settings.img_size)
        label = ref.label
        for runtime in runtimes_for(ref, settings.runtimes):
            if (label, runtime, settings.device) not in have:
                listed = ", ".join(sorted({f"{k[0]} ({k[1]}/{k[2]})" for k in have})) or "nothing"
                raise IsodeployError(f"{name} holds no result for {label} ({runtime}/{settings.device}); it has {listed}: re-create the baseline with the same artifacts, runtimes and device")


def bench(
    artifacts: List[str] = typer.Argument(..., help=ARTIFACT_HELP),
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
    json_path: Optional[Path] = JsonOption,
    md_path: Optional[Path] = MdOption,
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A previous 'bench --json' report; exit 1 when p50 regresses beyond --max-regression and noise."),
    max_regression: str = typer.Option("10%", "--max-regression", help="Allowed p50 slow-down against --baseline, e.g. 10% or 0.1."),
) -> None:
    """Measure latency (mean/p50/p90/p99, CV, img/s), peak memory and MACs of each artifact on each runtime."""
    from isodeploy.benchmarking import gate as gate_mod
    from isodeploy.benchmarking.markdown import to_markdown
    from isodeploy.benchmarking.report import load_report, measurement_notes, protocol_line, rich_table, write_text_atomic
    from isodeploy.benchmarking.suite import run_bench

    from isodeploy.commands.common import check_artifact_arguments

    check_artifact_arguments(artifacts, img_size)  # --img-size on a folder, a model shadowed by a folder: said up front
    settings = make_settings(runtime, device, batch, warmup, iters, threads, weights, img_size, memory, precision, memory_repeats, compile,
                             protocol, budget)
    check_report_paths({"--json": json_path, "--md": md_path}, inputs=[*artifacts, baseline, weights])
    base = threshold = None
    if baseline is None and max_regression != "10%":
        typer.secho("warning: --max-regression has no effect without --baseline", fg=typer.colors.YELLOW, err=True)
    if baseline is not None:
        threshold = gate_mod.parse_regression(max_regression)
        base = load_report(baseline)
        gate_mod.validate_baseline(base, f"baseline '{baseline}'")
        check_baseline_keys(base, artifacts, settings, f"baseline '{baseline}'")
    report = run_bench(artifacts, settings, progress=progress_bar)
    console = out_console()
    console.print(rich_table(report.results, title=f"Latency per batch of {settings.batch} ({settings.device})"))
    if report.ratios:
        from isodeploy.benchmarking.ratios import ratio_table

        console.print(ratio_table(report.ratios))
    for line in [f"protocol: {protocol_line(report)}"] + measurement_notes(report.results) + report.notes:
        console.print(f"[dim]- {line}[/dim]")
    payload = report.to_dict()
    result = None
    if base is not None:
        result = gate_mod.check_regression(report, base, threshold, f"baseline '{baseline}'")
        payload["gate"] = {"baseline": str(baseline), "max_regression": threshold, "failed": result.failed,
                           "rows": [dict(vars(r), verdict=r.verdict) for r in result.rows]}
        console.print(gate_mod.gate_table(result))
    if json_path:
        write_json_atomic(json_path, payload)
    if md_path:
        text = to_markdown(report)
        if result is not None:
            text += "\n## Regression gate\n\n" + gate_mod.gate_markdown(result) + "\n"
        write_text_atomic(md_path, text)
    if result is not None and result.failed:
        worst = max((r for r in result.rows if r.regressed), key=lambda r: r.change)
        raise IsodeployError(
            f"latency regressed: {worst.label} ({worst.runtime}/{worst.device}) p50 {worst.base_p50_ms:.2f} → {worst.new_p50_ms:.2f} ms "
            f"({worst.change * 100:+.1f} %, 95 % CI {(worst.ci_low - 1) * 100:+.1f} to {(worst.ci_high - 1) * 100:+.1f} %, allowed +{threshold * 100:.0f} %)",
            exit_code=ExitCode.NUMERIC,
        )


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
