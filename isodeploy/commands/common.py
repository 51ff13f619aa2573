"""Options shared by every command, so that MODEL, --weights, --img-size and --json read the same everywhere."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import typer

WEIGHTS_HELP = "pretrained (timm hub download) | random (random init, offline) | PATH to a .safetensors/.pth state dict."
MODEL_HELP = "An alias from models/ (e.g. deit_b), any timm model name, or an isodeploy output folder."

WeightsOption = typer.Option("pretrained", "--weights", "-w", help=WEIGHTS_HELP)
ImgSizeOption = typer.Option(None, "--img-size", help="Input resolution, where the model allows it.")
JsonOption = typer.Option(None, "--json", help="Also write the result as JSON to this path.")


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON through a temp file and rename, so a reader never sees half a file."""
    if is_dataclass(payload):
        payload = asdict(payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, default=str)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
