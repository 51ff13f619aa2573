"""``isodeploy prune MODEL -o DIR``: isomorphic pruning to a reloadable folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import LATENCY_TABLE_HELP, MODEL_HELP, TARGET_LATENCY_HELP, ImgSizeOption, JsonOption, WeightsOption


def prune(
    model: str = typer.Argument(..., help=MODEL_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder: model.safetensors + isodeploy.json."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A recipe from models/ (see 'isodeploy presets'). Default: the alias's recipe."),
    ratio: Optional[float] = typer.Option(None, "--ratio", help="Fraction of channels removed from every class."),
    embed_ratio: Optional[float] = typer.Option(None, "--embed-ratio", help="Override for the embedding (residual) class."),
    mlp_ratio: Optional[float] = typer.Option(None, "--mlp-ratio", help="Override for hidden classes (MLP, bottleneck, expansion)."),
    head_ratio: Optional[float] = typer.Option(None, "--head-ratio", help="Override for whole heads."),
    head_dim_ratio: Optional[float] = typer.Option(None, "--head-dim-ratio", help="Override for head dims."),
    ranking: str = typer.Option("isomorphic", "--ranking", help="isomorphic (within classes) | global (all channels) | local (every group equally)."),
    importance: str = typer.Option("magnitude", "--importance", help="magnitude | taylor | random."),
    norm: str = typer.Option("l2", "--norm", help="Magnitude norm: l1 | l2."),
    calib_data: Optional[str] = typer.Option(None, "--calib-data", help="Taylor calibration images: an ImageFolder tree, a flat folder, or 'synthetic'."),
    calib_batches: int = typer.Option(8, "--calib-batches", help="Calibration batches for taylor."),
    round_to: int = typer.Option(8, "--round-to", help="Round widths to multiples of N (head dims stay ≥ 16). The paper used 2."),
    target_macs: Optional[str] = typer.Option(None, "--target-macs", help="Search the ratio that lands within 1 %% of this many MACs, e.g. 4.2G."),
    target_latency: Optional[str] = typer.Option(None, "--target-latency", help=TARGET_LATENCY_HELP),
    latency_table: Optional[Path] = typer.Option(None, "--latency-table", help=LATENCY_TABLE_HELP),
    latency_runtime: str = typer.Option("ort", "--latency-runtime", help="Where --target-latency is measured: ort (onnxruntime CPU) | trt (TensorRT FP16, GPU)."),
    bench_batch: Optional[int] = typer.Option(None, "--bench-batch", help="Batch --target-latency is measured at (default: the bench's, 8 on CPU)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads --target-latency is measured with (default: every usable core)."),
    max_group_ratio: float = typer.Option(0.9, "--max-group-ratio", help="No group loses more than this fraction (guards against layer collapse)."),
    weights: str = WeightsOption,
    img_size: Optional[int] = ImgSizeOption,
    strict: bool = typer.Option(False, "--strict", help="Fail if an op without a channel rule froze any weight's channels."),
    force: bool = typer.Option(False, "--force", help="Replace an output folder that holds another model."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Prune MODEL with isomorphic ranking and write a folder every other command accepts as MODEL."""
    from rich.console import Console

    from isodeploy.api import print_prune_summary, prune_to_folder
    from isodeploy.commands.common import flags_as, live_status, warn

    console = Console()
    with live_status(console) as status, flags_as({"runtime": "--latency-runtime", "batch": "--bench-batch"}):
        run = prune_to_folder(
            model, output, preset=preset, ratio=ratio, embed_ratio=embed_ratio, mlp_ratio=mlp_ratio, head_ratio=head_ratio,
            head_dim_ratio=head_dim_ratio, ranking=ranking, importance=importance, norm=norm, calib_data=calib_data,
            calib_batches=calib_batches, round_to=round_to, target_macs=target_macs, max_group_ratio=max_group_ratio,
            weights=weights, img_size=img_size, strict=strict, force=force, json_path=json_path,
            progress=status, warn=warn, target_latency=target_latency, latency_table=latency_table, latency_runtime=latency_runtime,
            bench_batch=bench_batch, threads=threads)
    print_prune_summary(console, run.result, output)
    for note in run.notes:
        warn(note)


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)
