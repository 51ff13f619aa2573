"""``isodeploy prune MODEL -o DIR``: isomorphic pruning to a reloadable folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import MODEL_HELP, ImgSizeOption, JsonOption, WeightsOption, write_json_atomic


def parse_macs(text: Optional[str]) -> Optional[float]:
    """'4.2G', '600M', '4.2e9' → MACs per image."""
    if text is None:
        return None
    from isodeploy.core.errors import IsodeployError

    units = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
    value = text.strip().lower()
    try:
        number = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError as exc:
        raise IsodeployError(f"--target-macs takes a number with an optional unit, e.g. 4.2G or 600M; got '{text}'") from exc
    import math

    if not math.isfinite(number):
        raise IsodeployError(f"--target-macs must be a finite number, e.g. 4.2G; got '{text}'")
    return number


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
    max_group_ratio: float = typer.Option(0.9, "--max-group-ratio", help="No group loses more than this fraction (guards against layer collapse)."),
    weights: str = WeightsOption,
    img_size: Optional[int] = ImgSizeOption,
    strict: bool = typer.Option(False, "--strict", help="Fail if an op without a channel rule froze any weight's channels."),
    force: bool = typer.Option(False, "--force", help="Replace an output folder that holds another model."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Prune MODEL with isomorphic ranking and write a folder every other command accepts as MODEL."""
    from rich.console import Console

    from isodeploy import api
    from isodeploy.core.errors import IsodeployError
    from isodeploy.pruning.report import print_summary

    from isodeploy.core.artifacts import legacy_entries
    from isodeploy.core.output_folder import probe_output_folder
    from isodeploy.loading import model_folder

    # -o is checked before the long work (the write re-checks under the folder's lock)
    probe_output_folder(output, adopt=legacy_entries, input_folder=model_folder(model))
    from isodeploy.core.report_paths import check_report_paths

    check_report_paths({"--json": json_path}, inputs=[model, weights], folders=[(output, ("model.safetensors", "isodeploy.json"))])
    from isodeploy.commands.common import check_model_argument, warn

    check_model_argument(model, weights, img_size)
    if calib_data is not None and importance != "taylor":
        warn(f"--calib-data is ignored: only --importance taylor uses calibration images (this run: {importance})")
    recipe = preset or api.default_preset(model)
    explicit = dict(ratio=ratio, embed_ratio=embed_ratio, mlp_ratio=mlp_ratio, head_ratio=head_ratio, head_dim_ratio=head_dim_ratio)
    if preset is None and any(v is not None for v in explicit.values()):
        recipe = None  # explicit ratios replace the alias's default recipe
    ratios = {kind: explicit[f] for kind, f in api.RATIO_KINDS.items() if explicit[f] is not None}
    if recipe is None and ratio is None and not ratios and target_macs is None:
        raise IsodeployError(f"no ratios for '{model}': pass --preset, --ratio or --target-macs (see 'isodeploy presets')")
    options = dict(ratio=ratio, ratios=ratios, preset=recipe, ranking=ranking, importance=importance, norm=norm, round_to=round_to,
                   max_group_ratio=max_group_ratio, target_macs=parse_macs(target_macs))
    from isodeploy.commands.common import flags_as

    with flags_as({f"ratios['{kind}']": "--" + field.replace("_", "-") for kind, field in api.RATIO_KINDS.items()}):
        api.prune_config(**options)  # bad options fail here, before the model is built
    console = Console()
    with console.status(f"loading {model}") as status:
        dense = api.create_model(model, weights=weights, img_size=img_size)
        result = api.prune(dense, api.example_inputs(dense), **options, calib_data=calib_data or "synthetic",
                           calib_batches=calib_batches, strict=strict, progress=lambda msg: status.update(msg))
        status.update(f"writing {output}")
        api.save(result, output, force=force)
    print_summary(console, result, output)
    _warn_if_nothing_rounded(result, round_to)
    _warn_unused_kind_ratios(result, ratios)
    if json_path:
        write_json_atomic(json_path, {k: v for k, v in result.spec.items() if k != "groups"} | {"output": str(output)})


def _warn_unused_kind_ratios(result, ratios: dict[str, float]) -> None:
    """``--head-ratio`` on a CNN (no class of that kind) changed nothing: say so instead of silence."""
    from isodeploy import api
    from isodeploy.commands.common import warn

    kinds = {c.get("kind") for c in result.spec.get("classes", []) if isinstance(c, dict)}
    for kind in sorted(set(ratios) - kinds):
        flag = "--" + api.RATIO_KINDS[kind].replace("_", "-")
        warn(f"{flag} ignored: the model has no '{kind}' class (its classes: {', '.join(sorted(k for k in kinds if k)) or 'none'})")


def _warn_if_nothing_rounded(result, round_to: int) -> None:
    """``--round-to N`` larger than (or dividing none of) the kept widths rounds nothing: say so."""
    if round_to <= 1:
        return
    kept = [g.get("kept_width") for g in result.spec.get("groups", []) if isinstance(g, dict) and g.get("kept_width") != g.get("width")]
    kept = [k for k in kept if isinstance(k, int)]
    if kept and not any(k % round_to == 0 for k in kept):
        from isodeploy.commands.common import warn

        warn(f"--round-to {round_to} divides none of the pruned widths (largest kept: {max(kept)}); nothing was rounded: "
             "use a smaller --round-to, e.g. 8")


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)
