"""``isodeploy bench``: latency, throughput, peak memory and MACs of artifacts, with an optional CI gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from isodeploy.commands.common import ImgSizeOption, check_report_paths, JsonOption, WeightsOption

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


def progress_bar() -> Any:
    """Progress on stderr (rich on a terminal, plain lines with ETA in logs), so tables on stdout stay clean for pipes."""
    from isodeploy.api import progress_reporter

    return progress_reporter()


def out_console() -> Any:
    """stdout console; when piped (CI logs), wide enough that tables are not squeezed to 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=220)


def bench_options(runtime: List[str], device: Optional[str], batch: Optional[int], warmup: Optional[int], iters: Optional[int],
                  threads: Optional[int], weights: str, img_size: Optional[int], memory: bool, precision: str,
                  memory_repeats: int = 1, compile: bool = False, protocol: Optional[str] = None, budget: Optional[float] = None) -> dict:
    """The bench options as the keyword arguments of :func:`isodeploy.api.bench` / :func:`isodeploy.api.compare`."""
    return dict(runtimes=runtime, device=device, batch=batch, protocol=protocol, budget=budget, warmup=warmup, iters=iters,
                threads=threads, weights=weights, img_size=img_size, memory=memory, precision=precision,
                memory_repeats=memory_repeats, compile=compile)


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
    from isodeploy import api
    from isodeploy.commands.common import check_artifact_arguments

    check_artifact_arguments(artifacts, img_size)  # --img-size on a folder, a model shadowed by a folder: said up front
    options = bench_options(runtime, device, batch, warmup, iters, threads, weights, img_size, memory, precision, memory_repeats, compile,
                            protocol, budget)
    settings = api.bench_settings(**options)
    check_report_paths({"--json": json_path, "--md": md_path}, inputs=[*artifacts, baseline, weights])
    base = None
    if baseline is None and max_regression != "10%":
        typer.secho("warning: --max-regression has no effect without --baseline", fg=typer.colors.YELLOW, err=True)
    if baseline is not None:
        api.parse_regression(max_regression)  # a bad threshold, a damaged or unfitting baseline: one line before measuring
        base = api.load_baseline(baseline, artifacts, settings)
    report = api.bench(artifacts, **options, progress=progress_bar)
    console = out_console()
    console.print(api.bench_table(report.results, title=f"Latency per batch of {settings.batch} ({settings.device})"))
    if report.ratios:
        console.print(api.ratio_table(report.ratios))
    for line in api.bench_notes(report):
        console.print(f"[dim]- {line}[/dim]")
    gate = None
    if base is not None:
        gate = api.bench_gate(report, base, max_regression, check=False, name=f"baseline '{baseline}'")
        console.print(api.gate_table(gate))
    api.write_bench_files(report, json_path=json_path, md_path=md_path, gate=gate, baseline=baseline)
    error = api.regression_error(gate) if gate is not None else None
    if error is not None:
        raise error


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
