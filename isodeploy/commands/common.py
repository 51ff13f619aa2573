"""Options shared by every command, so that MODEL, --weights, --img-size and --json read the same everywhere."""

from __future__ import annotations

import typer

from isodeploy.core.report_paths import check_report_paths  # noqa: F401 - re-exported for command modules
from isodeploy.fileio import write_json_atomic  # noqa: F401 - re-exported for command modules

WEIGHTS_HELP = "pretrained (timm hub download) | random (random init, offline) | PATH to a .safetensors/.pth state dict."
MODEL_HELP = ("An alias from models/ (e.g. deit_b), any timm model name, torchvision:NAME, a factory package.module:function, "
              "or an isodeploy output folder.")

WeightsOption = typer.Option("pretrained", "--weights", "-w", help=WEIGHTS_HELP)
# 1..4096 pixels (isodeploy.core.bounds.MAX_SIDE): larger sides only ever exhaust memory
ImgSizeOption = typer.Option(None, "--img-size", min=1, max=4096, help="Input resolution, where the model allows it.")
JsonOption = typer.Option(None, "--json", help="Also write the result as JSON to this path.")


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (the command goes on)."""
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def warn_ignored_for_folder(model: str, weights: str | None, img_size: int | None) -> None:
    """A folder MODEL records its own weights and input size: say so when --weights/--img-size were given."""
    from pathlib import Path

    if not Path(model).is_dir():
        return
    ignored = [flag for flag, given in (("--weights", weights not in (None, "pretrained")), ("--img-size", img_size is not None)) if given]
    if ignored:
        warn(f"{' and '.join(ignored)} ignored: MODEL '{model}' is an isodeploy folder, which records its own weights and input size")
