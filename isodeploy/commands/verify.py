"""``isodeploy verify``: an ONNX (or engine) against PyTorch FP32 or an FP32 ONNX, with pass/fail gates."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import ImgSizeOption, check_report_paths, JsonOption, write_json_atomic
from isodeploy.core.errors import ExitCode, IsodeployError

#: exit code of a numeric failure (bad input keeps IsodeployError's default, 2)
EXIT_GATE_FAILED = ExitCode.NUMERIC
REFERENCE_HELP = ("MODEL (alias, timm name, isodeploy folder) run in PyTorch FP32, or an FP32 .onnx run in onnxruntime; "
                  "default: the model named in the artifact's metadata, with the weights it was exported with.")
GATES_HELP = "auto (fp16 for FP16 ONNX and engines, else fp32) | fp32 (atol 1e-4, rtol 1e-3, top-1 100%) | fp16 (cosine ≥ 0.999, top-1 ≥ 99%)."


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise IsodeployError(f"--batch-sizes must be positive integers separated by commas (e.g. 1,7), not '{text}'")
    return sizes


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

    from isodeploy.core.inputs import image_samples, random_samples, to_batches
    from isodeploy.export.reference import check_same_input, open_reference
    from isodeploy.runtime.open import open_runner, runner_precision
    from isodeploy.export.verify import Gates, verify

    sizes = _parse_sizes(batch_sizes)
    check_report_paths({"--json": json_path}, inputs=[artifact, reference, weights])
    Gates.fp32().override(atol=atol, rtol=rtol, min_cosine=min_cosine, min_top1=min_top1)  # refuse NaN/out of range up front
    if inputs < 1:
        raise IsodeployError("--inputs must be at least 1")
    if gates_name not in ("auto", "fp32", "fp16"):
        raise IsodeployError(f"--gates must be auto, fp32 or fp16, not '{gates_name}'")
    if reference is not None:
        from isodeploy.commands.common import check_model_argument

        check_model_argument(reference, weights, img_size)  # a folder reference records its own size and weights
    console = Console(stderr=True)
    with console.status(f"opening {artifact}") as status:
        candidate = open_runner(artifact, threads=threads, runtime=runtime, device=device)
        status.update("building the reference")
        ref = open_reference(reference, candidate, weights=weights, img_size=img_size, threads=threads)
        input_size = check_same_input(candidate, artifact, ref)
        from isodeploy.core.limits import check_batch_fits

        check_batch_fits(max(sizes), input_size, "--batch-sizes")  # before any batch is built
        precision = runner_precision(candidate)
        gates = Gates.for_precision(precision if gates_name == "auto" else gates_name)
        gates = gates.override(atol=atol, rtol=rtol, min_cosine=min_cosine, min_top1=min_top1)
        sets = [("random", random_samples(inputs, input_size))]
        if data is not None:
            sets.append(("images", image_samples(data, inputs, input_size, ref.mean, ref.std)))
        reports = []
        for label, samples in sets:
            status.update(f"running {len(samples)} {label} samples at batch sizes {sizes}")
            report = verify(candidate, ref.runner, to_batches(samples, sizes), gates, label=label)
            report.inputs = {"kind": label, "samples": int(len(samples)), "batch_sizes": sizes}
            reports.append(report)
    passed = all(r.passed for r in reports)
    _print(reports, artifact, ref.label, gates, precision)
    if json_path:
        write_json_atomic(json_path, {"passed": passed, "artifact": str(artifact), "reference": ref.label,
                                      "precision": precision, "gates": gates.__dict__, "sets": [r.to_dict() for r in reports]})
    if not passed:
        first = next(f for r in reports for f in r.failures)
        raise IsodeployError(f"verify failed ({gates.name} gates, {next(r.label for r in reports if not r.passed)} inputs): {first}",
                             exit_code=EXIT_GATE_FAILED)


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
