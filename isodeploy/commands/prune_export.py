"""``isodeploy prune-export MODEL --target onnx|trt -o DIR``: the whole pipeline in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import LATENCY_TABLE_HELP, MODEL_HELP, TARGET_LATENCY_HELP, ImgSizeOption, JsonOption, WeightsOption


def prune_export(
    model: str = typer.Argument(..., help=MODEL_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for every artifact (re-runs skip unchanged stages)."),
    target: str = typer.Option("onnx", "--target", help="onnx (ONNX + onnxruntime) | trt (adds FP16 ONNX and a TensorRT engine; needs an NVIDIA GPU)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Pruning recipe (see 'isodeploy presets'); default: the alias's recipe, e.g. deit_b → deit-4.2g."),
    ratio: Optional[float] = typer.Option(None, "--ratio", help="One ratio for every class instead of a preset."),
    target_latency: Optional[str] = typer.Option(None, "--target-latency", help=TARGET_LATENCY_HELP + " With --target trt: TensorRT FP16 on the GPU."),
    latency_table: Optional[Path] = typer.Option(None, "--latency-table", help=LATENCY_TABLE_HELP),
    weights: str = WeightsOption,
    img_size: Optional[int] = ImgSizeOption,
    finetune_data: Optional[Path] = typer.Option(None, "--finetune-data", help="Images to fine-tune the pruned model on (distillation from the dense one)."),
    epochs: int = typer.Option(1, "--epochs", help="Fine-tuning epochs."),
    bench: bool = typer.Option(True, "--bench/--no-bench", help="Measure latency and memory of the dense, pruned and uniform-twin ONNX with onnxruntime CPU (and torch/TensorRT on a GPU)."),
    bench_batch: Optional[int] = typer.Option(None, "--bench-batch", help="Batch size for the CPU latency figures (default: the protocol's 8; GPU runs use 256)."),
    bench_protocol: Optional[str] = typer.Option(None, "--bench-protocol", help=(
        "adaptive (default): warm up by time, then interleaved rounds until the pruned ÷ uniform-twin 95 % interval is within ±2 % "
        "or --bench-budget runs out · paper: the paper's 20 warm-up + 100 timed steps at batch 8 (CPU) / 256 (GPU) · "
        "fixed: the --bench-warmup/--bench-iters you give.")),
    bench_budget: Optional[float] = typer.Option(None, "--bench-budget", help="Seconds the adaptive protocol may spend timing, per runtime (default 120: the whole default job fits ~5 min on 2 cores)."),
    bench_iters: Optional[int] = typer.Option(None, "--bench-iters", help="Timed steps per artifact in 10 interleaved rounds (fixes the protocol; default 100)."),
    bench_warmup: Optional[int] = typer.Option(None, "--bench-warmup", help="Warm-up steps per artifact (fixes the protocol; default 20)."),
    uniform_twin: bool = typer.Option(True, "--uniform-twin/--no-uniform-twin", help="Also build and bench the uniform-width model at the pruned MACs (±1 %)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="onnxruntime threads for the benchmark (default: every usable core)."),
    force: bool = typer.Option(False, "--force", help="Redo every stage, and allow an output folder of another model."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Prune → (fine-tune) → export ONNX → verify → [FP16 ONNX → TensorRT engine → verify] → bench → report → Triton repo.

    Exit codes: 0 done; 1 a numeric check failed; 2 bad input; 3 TensorRT missing; 4 no CUDA GPU
    (with --target trt, every stage up to the FP16 ONNX still runs and the report says what was skipped).
    """
    from rich.console import Console

    from isodeploy.api import CallbackReporter, print_pipeline_summary
    from isodeploy.api import prune_export as run_prune_export
    from isodeploy.commands.common import flags_as, live_status, warn

    console = Console()
    with live_status(console) as status, flags_as({"batch": "--bench-batch"}):
        def say(message: str) -> None:
            console.print(message)
            status(message)

        result = run_prune_export(
            model, output, target=target, preset=preset, ratio=ratio, weights=weights, img_size=img_size,
            finetune_data=finetune_data, epochs=epochs, bench=bench, bench_batch=bench_batch, bench_protocol=bench_protocol,
            bench_budget=bench_budget, bench_iters=bench_iters, bench_warmup=bench_warmup, uniform_twin=uniform_twin,
            threads=threads, force=force, json_path=json_path, say=say, target_latency=target_latency, latency_table=latency_table,
            progress=lambda: CallbackReporter(console.print, status), warn=warn)
    print_pipeline_summary(console, result)
    if result.exit_code:
        typer.secho(f"error: {result.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command("prune-export")(prune_export)
