"""Options shared by every command, so that MODEL, --weights, --img-size and --json read the same everywhere."""

from __future__ import annotations

import typer

from isodeploy.fileio import write_json_atomic  # noqa: F401 - re-exported for command modules

WEIGHTS_HELP = "pretrained (timm hub download) | random (random init, offline) | PATH to a .safetensors/.pth state dict."
MODEL_HELP = "An alias from models/ (e.g. deit_b), any timm model name, or an isodeploy output folder."

WeightsOption = typer.Option("pretrained", "--weights", "-w", help=WEIGHTS_HELP)
ImgSizeOption = typer.Option(None, "--img-size", help="Input resolution, where the model allows it.")
JsonOption = typer.Option(None, "--json", help="Also write the result as JSON to this path.")
