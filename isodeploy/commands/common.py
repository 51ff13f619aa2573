"""Options shared by every command, so that MODEL, --weights, --img-size and --json read the same everywhere."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer

from isodeploy.core.report_paths import check_report_paths  # noqa: F401 - re-exported for command modules
from isodeploy.core.safe_write import write_json_atomic  # noqa: F401 - re-exported for command modules

WEIGHTS_HELP = "pretrained (timm hub download) | random (random init, offline) | PATH to a .safetensors/.pth state dict."
MODEL_HELP = ("An alias from models/ (e.g. deit_b), any timm model name, torchvision:NAME, a factory package.module:function, "
              "or an isodeploy output folder.")

WeightsOption = typer.Option("pretrained", "--weights", "-w", help=WEIGHTS_HELP)
# 1..4096 pixels (isodeploy.core.bounds.MAX_SIDE): larger sides only ever exhaust memory
ImgSizeOption = typer.Option(None, "--img-size", min=1, max=4096, help="Input resolution, where the model allows it.")


def _json_callback(value: Path | None) -> Path | None:
    from isodeploy.core.report_paths import check_location

    return check_location(value, "--json")


# checked when the command line is parsed, before any model is loaded or measured
JsonOption = typer.Option(None, "--json", help="Also write the result as JSON to this path.", callback=_json_callback)


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (the command goes on)."""
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def check_model_argument(model: str, weights: str | None = None, img_size: int | None = None) -> None:
    """What every command does with its MODEL first: a factory named on the command line is trusted
    for this command (naming it is trusting it, so a folder it writes may rebuild from it); a folder
    named like a model never hides the model (say how to mean the folder); --weights/--img-size that
    a folder ignores are said to be ignored."""
    from isodeploy.loading import is_path_like, shadowing_folder
    from isodeploy.zoo.sources import is_factory, trust_factories

    if not is_path_like(model) and is_factory(model):
        trust_factories([model])
    if shadowing_folder(model) is not None:
        warn(f"'{model}' names a model and also an isodeploy folder here; using the model: pass ./{model} for the folder")
    warn_ignored_for_folder(model, weights, img_size)


def check_artifact_arguments(artifacts: list[str], img_size: int | None) -> None:
    """bench/compare: every folder artifact records its own input size, so --img-size passes it by."""
    for artifact in artifacts:
        if not str(artifact).lower().endswith((".json", ".onnx", ".plan", ".engine")):
            check_model_argument(str(artifact), None, img_size)


def warn_ignored_for_folder(model: str, weights: str | None, img_size: int | None) -> None:
    """A folder MODEL records its own weights and input size: say so when --weights/--img-size were given."""
    from isodeploy.loading import model_folder

    if model_folder(model) is None:
        return
    ignored = [flag for flag, given in (("--weights", weights not in (None, "pretrained")), ("--img-size", img_size is not None)) if given]
    if ignored:
        warn(f"{' and '.join(ignored)} ignored: MODEL '{model}' is an isodeploy folder, which records its own weights and input size")


@contextmanager
def flags_as(flags: dict[str, str]) -> Iterator[None]:
    """Name the right command-line flag in a :class:`ParameterError` raised inside: the API says
    ``ratios['embedding']=`` or ``ratio=``, the user typed ``--embed-ratio`` or ``groups --check``."""
    from isodeploy.core.errors import ParameterError

    try:
        yield
    except ParameterError as exc:
        if exc.param in flags:
            exc.flag = flags[exc.param]
        raise
