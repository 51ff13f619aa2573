"""``isodeploy export``: a model (alias, timm name or isodeploy folder) to a clean ONNX, FP32 or mixed FP16."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import MODEL_HELP, check_report_paths, ImgSizeOption, JsonOption, WeightsOption, write_json_atomic

EXPORTER_HELP = "torchscript (default: fastest, falls back to dynamo if it fails) | dynamo (torch.export based)."
PRECISION_HELP = "fp32 | fp16: mixed precision for TensorRT strongly typed builds (FP32 block list, FP32 I/O)."
#: the flags of the FP16-only options, by their API names (isodeploy.api.export.check_export_options)
FP16_FLAGS = {"calib_data": "--calib-data", "safe_range": "--safe-range", "calib_samples": "--calib-samples"}


def export_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="ONNX path; default ./<model>.onnx (DIR/model.onnx for a folder)."),
    weights: str = WeightsOption,
    img_size: Optional[int] = ImgSizeOption,
    opset: int = typer.Option(17, "--opset", help="ONNX opset, 17 or higher (LayerNormalization as one node)."),
    exporter: Optional[str] = typer.Option(None, "--exporter", help=EXPORTER_HELP),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    static_batch: bool = typer.Option(False, "--static-batch", help="Fix the batch at 1 instead of a dynamic batch dimension."),
    calib_data: Optional[Path] = typer.Option(None, "--calib-data", help="FP16: folder of images for the activation-range check (default: random normal)."),
    calib_samples: int = typer.Option(8, "--calib-samples", help="FP16: number of calibration samples."),
    safe_range: Optional[float] = typer.Option(None, "--safe-range", help="FP16: nodes whose |activation| exceeds this stay FP32 (default 16384)."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Export to ONNX (opset ≥ 17, dynamic batch, graphsurgeon clean-up, checked, metadata); --precision fp16 for TensorRT."""
    from rich.console import Console

    from isodeploy import api
    from isodeploy.api.export import check_export_options, default_onnx_path, describe, export_report_dict
    from isodeploy.commands.common import check_model_argument, warn

    ignored = check_export_options(precision, calib_data=calib_data, calib_samples=calib_samples, safe_range=safe_range)
    check_model_argument(model, weights, img_size)
    if ignored:
        warn(f"{', '.join(FP16_FLAGS[name] for name in ignored)} ignored: only --precision fp16 calibrates activation ranges")

    out = output or default_onnx_path(model, precision)
    check_report_paths({"--json": json_path}, inputs=[model, weights], outputs=[out])
    console = Console(stderr=True)
    with console.status(f"loading {model} and exporting it to ONNX ({precision})"):
        report = api.export_onnx(model, out, opset=opset, exporter=exporter, dynamic_batch=not static_batch,
                                 precision=precision, img_size=img_size, weights=weights, calib_data=calib_data,
                                 calib_samples=calib_samples, safe_range=safe_range)
    fp16 = report.fp16
    if fp16 is None:
        Console().print(describe(report))
    else:
        Console().print(f"wrote {out}: FP16 mixed precision, {fp16.size_bytes / 2**20:.1f} MiB, from a {report.exporter} export "
                        f"(opset {report.opset}, {report.nodes} nodes, {report.seconds:.1f} s) and a {fp16.seconds:.1f} s conversion")
    if report.fallback:
        console.print(f"[yellow]note: {report.fallback}; used the {report.exporter} exporter[/yellow]")
    if fp16 is not None:
        _print_fp16(fp16)
    if json_path:
        write_json_atomic(json_path, export_report_dict(report))


def _print_fp16(fp16) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"FP16: {fp16.total_nodes - len(fp16.fp32_nodes)} of {fp16.total_nodes} nodes in FP16; kept in FP32:")
    for col in ("reason", "nodes", "ops"):
        table.add_column(col)
    by_reason: dict[str, list[dict[str, str]]] = {}
    for node in fp16.fp32_nodes:
        key = node["reason"].split(" '")[0] if node["reason"].startswith(("activation", "weight")) else node["reason"]
        by_reason.setdefault(key, []).append(node)
    for reason, nodes in by_reason.items():
        ops = sorted({n["op"] for n in nodes})
        table.add_row(reason if not reason.startswith(("activation", "weight")) else f"{reason} above safe range {fp16.safe_range:g}",
                      str(len(nodes)), ", ".join(ops))
    Console().print(table)
    Console().print(f"largest |activation| on {fp16.calib_batches} calibration batch(es): {fp16.max_activation:.4g}; "
                    f"{fp16.casts_added} casts added; FP32 inputs/outputs: {fp16.keep_io_types}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
