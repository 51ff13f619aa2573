"""``isodeploy build-engine``: a TensorRT engine (FP16 strongly typed by default) from an ONNX file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import JsonOption, check_report_paths, write_json_atomic

PRECISION_HELP = ("fp16: strongly typed from the mixed-precision ONNX (an FP32 ONNX is converted on the fly) | "
                  "fp32 | fp16-legacy: BuilderFlag.FP16, TensorRT 10 only.")


def build_engine_cmd(
    onnx: Path = typer.Argument(..., help="The ONNX file (from 'isodeploy export')."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Engine path (.plan); default: ONNX path with .plan."),
    precision: str = typer.Option("fp16", "--precision", help=PRECISION_HELP),
    min_batch: int = typer.Option(1, "--min-batch", help="Smallest batch of the optimization profile."),
    opt_batch: Optional[int] = typer.Option(None, "--opt-batch", help="Batch TensorRT tunes kernels for: the batch you will run (default: --max-batch; bench's GPU protocol: 256)."),
    max_batch: int = typer.Option(256, "--max-batch", help="Largest batch of the optimization profile."),
    workspace_gb: Optional[float] = typer.Option(None, "--workspace-gb", help="Workspace memory pool limit in GiB (default: TensorRT's)."),
    opt_level: int = typer.Option(3, "--opt-level", help="Builder optimization level 0-5 (higher: slower build, maybe faster engine)."),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="Folder of timing caches, one per TensorRT version and GPU."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Build a TensorRT engine plus its .plan.json metadata (TensorRT, CUDA, GPU, profile, I/O, source hash)."""
    from rich.console import Console
    from rich.table import Table

    from isodeploy.api.engine import build_engine, default_engine_path

    out = output or default_engine_path(onnx)
    check_report_paths({"--json": json_path}, inputs=[onnx], outputs=[out])
    console = Console(stderr=True)
    with console.status("checking the ONNX and TensorRT") as status:
        meta = build_engine(onnx, out, precision=precision, min_batch=min_batch, opt_batch=opt_batch,
                            max_batch=max_batch, workspace_gb=workspace_gb, opt_level=opt_level,
                            timing_cache=timing_cache, on_phase=lambda msg: status.update(msg + " …"))
    table = Table(title=f"TensorRT engine {out}", show_header=False)
    rows = [
        ("precision", f"{meta.precision} ({'strongly typed' if meta.strongly_typed else 'weakly typed'}"
                      f"{', FP16 ONNX ' + meta.fp16_source if meta.fp16_source in ('onnx', 'converted') else ''})"),
        ("TensorRT / CUDA", f"{meta.tensorrt_version} / {meta.cuda_version}"),
        ("GPU", f"{meta.gpu_name} (compute capability {meta.compute_capability})"),
        ("profile (batch)", f"min {meta.min_batch} · opt {meta.opt_batch} · max {meta.max_batch}"),
        ("inputs", ", ".join(f"{t.name} {t.dtype}{t.shape}" for t in meta.inputs)),
        ("outputs", ", ".join(f"{t.name} {t.dtype}{t.shape}" for t in meta.outputs)),
        ("size", f"{meta.plan_bytes / 2**20:.1f} MiB"),
        ("build time", f"{meta.build_seconds:.1f} s"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)
    if meta.warnings:
        console.print(f"[yellow]{len(meta.warnings)} TensorRT warning(s); see 'warnings' in {out}.json[/yellow]")
    if json_path:
        write_json_atomic(json_path, meta.to_dict())


def register(app: typer.Typer) -> None:
    app.command("build-engine")(build_engine_cmd)
