"""``isodeploy triton-repo``: a Triton model repository entry for a .plan or .onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import JsonOption


def triton_repo_cmd(
    artifact: Path = typer.Argument(..., help="A TensorRT engine (.plan, with its .plan.json) or an .onnx file."),
    name: str = typer.Option(..., "--name", help="Model name in the repository (letters, digits, '_', '-', '.')."),
    repo: Path = typer.Option(..., "--output", "-o", help="The model repository folder (created if missing)."),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="max_batch_size; default: the engine profile's max (ONNX: 64)."),
    device: str = typer.Option("auto", "--device", help="auto (GPU for plans, CPU for ONNX) | gpu | cpu."),
    preferred: Optional[str] = typer.Option(None, "--preferred-batch", help="Preferred batch sizes, e.g. 8,32; default: opt and max batch."),
    max_queue_delay_us: int = typer.Option(100, "--max-queue-delay-us", help="Dynamic batcher queue delay in microseconds."),
    instances: int = typer.Option(1, "--instances", help="Model instances (instance_group count)."),
    static_batch: bool = typer.Option(False, "--static-batch", help="No dynamic batcher: each request runs as the client batched it."),
    force: bool = typer.Option(False, "--force", help="Replace REPO/NAME when it holds a different model."),
    check: bool = typer.Option(False, "--check", help="Load the model in a real tritonserver and send it one request."),
    server: Optional[Path] = typer.Option(None, "--server", help="tritonserver binary for --check (default: $ISODEPLOY_TRITONSERVER, then PATH)."),
    backend_dir: Optional[Path] = typer.Option(None, "--backend-dir", help="--backend-directory for --check (default: $ISODEPLOY_TRITON_BACKEND_DIR, then the server's own)."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Write REPO/NAME/config.pbtxt and REPO/NAME/1/model.plan|model.onnx (plus the engine's metadata)."""
    from rich.console import Console

    from isodeploy.api import triton_repo

    console = Console()

    def show(report) -> None:
        for warning in report.warnings:
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
        state = "already up to date" if report.unchanged else "written"
        console.print(f"[bold]{report.model_dir}[/bold] {state}: {report.platform}, max_batch_size {report.max_batch_size}, "
                      f"{report.instance_kind}")
        for rel in report.files:
            console.print(f"  {report.model_dir}/{rel}", highlight=False)
        hint = " (the Triton release whose TensorRT built the engine)" if report.platform == "tensorrt_plan" else ""
        console.print(f"Serve it with{hint}:", highlight=False)
        console.print(f"  {report.serve_command}", highlight=False, soft_wrap=True)

    report = triton_repo(artifact, name, repo, max_batch=max_batch, device=device, preferred_batch=preferred,
                         max_queue_delay_us=max_queue_delay_us, instances=instances, static_batch=static_batch, force=force,
                         check=check, server=server, backend_dir=backend_dir, json_path=json_path, on_written=show)
    if report.check is not None:
        result = report.check
        diff = "" if result["max_abs_diff"] is None else f", max abs diff vs onnxruntime {result['max_abs_diff']:.3g}"
        console.print(f"Triton {result['server_version']}: '{result['model']}' READY in {result['load_seconds']:.1f} s; one request "
                      f"{result['request_shapes']} -> {result['output_shapes']}{diff}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("triton-repo")(triton_repo_cmd)
