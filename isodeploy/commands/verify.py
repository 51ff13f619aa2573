"""``isodeploy verify``: an ONNX (or engine) against PyTorch FP32 or an FP32 ONNX, with pass/fail gates."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import ImgSizeOption, check_report_paths, JsonOption, write_json_atomic

REFERENCE_HELP = ("MODEL (alias, timm name, isodeploy folder) run in PyTorch FP32, or an FP32 .onnx run in onnxruntime; "
                  "default: the model named in the artifact's metadata, with the weights it was exported with.")
GATES_HELP = "auto (fp16 for FP16 ONNX and engines, else fp32) | fp32 (atol 1e-4, rtol 1e-3, top-1 100%) | fp16 (cosine ≥ 0.999, top-1 ≥ 99%)."


def verify_cmd(
    artifact: Path = typer.Argument(..., help="The .onnx (FP32 or FP16) or .plan to check."),
    reference: Optional[str] = typer.Option(None, "--reference", "-r", help=REFERENCE_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Weights of a MODEL reference: pretrained | random | PATH."),
    img_size: Optional[int] = ImgSizeOption,
    inputs: int = typer.Option(16, "--inputs", "-n", help="Random-normal samples (and at most this many images from --data)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of images: also compare on real images (timm eval preprocessing)."),
    batch_sizes: str = typer.Option("1,7", "--batch-sizes", help="Run every sample at each of these batch sizes."),
    gates_name: str = typer.Option("auto", "--gates", help=GATES_HELP),
    atol: Optional[float] = typer.Option(None, "--atol", help="Absolute tolerance per element (overrides the gate)."),
    rtol: Optional[float] = typer.Option(None, "--rtol", help="Relative tolerance per element (overrides the gate)."),
    min_cosine: Optional[float] = typer.Option(None, "--min-cosine", help="Minimum per-sample cosine similarity."),
    min_top1: Optional[float] = typer.Option(None, "--min-top1", help="Minimum top-1 agreement, 0..1."),
    threads: Optional[int] = typer.Option(None, "--threads", help="onnxruntime intra-op threads (default: onnxruntime's)."),
    runtime: str = typer.Option("ort", "--runtime", help="For a .onnx: ort (onnxruntime CPU) | reference (onnx's numpy evaluator: "
                                "every tensor in its ONNX type, so FP16 overflow shows as in TensorRT; slow)."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu | cuda: where onnxruntime runs a .onnx (cuda needs onnxruntime-gpu; "
                               "a CUDA provider that cannot start is an error, exit 4, never a silent CPU run)."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Compare outputs on the same inputs at two batch sizes: max/mean/p99 |err|, max rel err, cosine, top-1/top-5; exit 1 on failure."""
    from rich.console import Console

    from isodeploy.api.verification import check_verify_options, verify_artifact
    from isodeploy.commands.common import check_model_argument

    check_verify_options(batch_sizes=batch_sizes, inputs=inputs, gates=gates_name, atol=atol, rtol=rtol,
                         min_cosine=min_cosine, min_top1=min_top1)  # before any file is looked at
    check_report_paths({"--json": json_path}, inputs=[artifact, reference, weights])
    if reference is not None:
        check_model_argument(reference, weights, img_size)  # a folder reference records its own size and weights
    console = Console(stderr=True)
    with console.status(f"opening {artifact}") as status:
        outcome = verify_artifact(artifact, reference, weights=weights, img_size=img_size, inputs=inputs, data=data,
                                  batch_sizes=batch_sizes, gates=gates_name, atol=atol, rtol=rtol, min_cosine=min_cosine,
                                  min_top1=min_top1, threads=threads, runtime=runtime, device=device,
                                  progress=status.update, raise_on_failure=False)
    _print(outcome.reports, artifact, outcome.reference, outcome.gates, outcome.precision)
    if json_path:
        write_json_atomic(json_path, outcome.to_dict())
    outcome.raise_if_failed()


def _print(reports, artifact: Path, reference: str, gates, precision: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"{artifact} ({precision}) vs {reference}; gates {gates.describe()}")
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    for report in reports:
        sizes = ",".join(map(str, report.batch_sizes))
        # Metrics as rows, outputs as columns: stays readable in an 80-column terminal.
        table = Table(title=f"{report.label} inputs: {report.samples} rows at batch {sizes}", title_justify="left")
        table.add_column("metric")
        for s in report.outputs:
            table.add_column(s.name, justify="right")
        rows = [
            ("max |err|", lambda s: f"{s.max_abs:.3e}"), ("mean |err|", lambda s: f"{s.mean_abs:.3e}"),
            ("p99 |err|", lambda s: f"{s.p99_abs:.3e}"), ("max rel err", lambda s: f"{s.max_rel:.3e}"),
            ("min / mean cosine", lambda s: f"{s.min_cosine:.6f} / {s.mean_cosine:.6f}"),
            ("outside tolerance", lambda s: "-" if s.outside_tolerance is None else f"{s.outside_tolerance} of {s.elements}"),
            ("top-1 agreement", lambda s: pct(s.top1_agreement)), ("top-5 overlap", lambda s: pct(s.top5_overlap)),
            ("result", lambda s: "[green]pass[/green]" if s.passed else "[red]FAIL[/red]"),
        ]
        for label, cell in rows:
            table.add_row(label, *[cell(s) for s in report.outputs])
        console.print(table)
        for s in report.outputs:
            by_size = ", ".join(f"batch {k}: {v:.2e}" for k, v in s.max_abs_by_batch_size.items())
            console.print(f"  {s.name}: max |err| by batch size: {by_size}")
            if s.worst is not None:
                console.print(f"  {s.worst.describe(s.name)}", soft_wrap=True)
    console.print("[green]verify passed[/green]" if all(r.passed for r in reports) else "[red]verify failed[/red]")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)
