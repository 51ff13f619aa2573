"""Options shared by every command, so that MODEL, --weights, --img-size and --json read the same everywhere."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import typer


WEIGHTS_HELP = "pretrained (timm hub download) | random (random init, offline) | PATH to a .safetensors/.pth state dict."
TARGET_LATENCY_HELP = ("Prune to a measured latency: a time (300ms) or a fraction of the dense model's latency (0.5), on the bench's "
                       "runtime, batch and threads. Per-class latency tables are timed once and cached (~/.cache/isodeploy). "
                       "May be combined with --target-macs.")
LATENCY_TABLE_HELP = "A latency table (.json) to reuse across machines of one kind, or where to write the one built."
MODEL_HELP = ("An alias from models/ (e.g. deit_b), any timm model name, torchvision:NAME, hf:TYPE or hf:ORG/NAME (transformers), "
              "a factory package.module:function, "
              "or an isodeploy output folder.")

WeightsOption = typer.Option("pretrained", "--weights", "-w", help=WEIGHTS_HELP)
# 1..4096 pixels (isodeploy.core.bounds.MAX_SIDE): larger sides only ever exhaust memory
ImgSizeOption = typer.Option(None, "--img-size", min=1, max=4096, help="Input resolution, where the model allows it.")


def check_report_paths(*args, **kwargs) -> None:
    """:func:`isodeploy.api.files.check_report_paths`, imported when first used (the CLI starts fast)."""
    from isodeploy.api.files import check_report_paths as check

    check(*args, **kwargs)


def write_json_atomic(path: Path, payload) -> None:
    """:func:`isodeploy.api.files.write_json_atomic`, imported when first used (the CLI starts fast)."""
    from isodeploy.api.files import write_json_atomic as write

    write(path, payload)


def _json_callback(value: Path | None) -> Path | None:
    from isodeploy.api.files import check_location

    return check_location(value, "--json")


# checked when the command line is parsed, before any model is loaded or measured
JsonOption = typer.Option(None, "--json", help="Also write the result as JSON to this path.", callback=_json_callback)


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (the command goes on)."""
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def check_model_argument(model: str, weights: str | None = None, img_size: int | None = None) -> None:
    """What every command does with its MODEL first (:func:`isodeploy.api.model_argument_warnings`):
    trust a factory named here, and say so when a folder named like a model is passed by or a folder
    ignores --weights/--img-size."""
    from isodeploy.api.model_args import model_argument_warnings

    for line in model_argument_warnings(model, weights, img_size):
        warn(line)


def check_artifact_arguments(artifacts: list[str], img_size: int | None) -> None:
    """bench/compare: every folder artifact records its own input size, so --img-size passes it by."""
    for artifact in artifacts:
        if not str(artifact).lower().endswith((".json", ".onnx", ".plan", ".engine")):
            check_model_argument(str(artifact), None, img_size)


def warn_ignored_for_folder(model: str, weights: str | None, img_size: int | None) -> None:
    """A folder MODEL records its own weights and input size: say so when --weights/--img-size were given."""
    from isodeploy.api.model_args import folder_ignores

    line = folder_ignores(model, weights, img_size)
    if line:
        warn(line)


@contextmanager
def live_status(console) -> Iterator[Callable[[str], None]]:
    """A rich status line that appears with the first message given to the yielded function: the
    up-front checks and their warnings come before it, as they did when the command made them itself."""
    shown = []

    def update(message: str) -> None:
        if shown:
            shown[0].update(message)
        else:
            shown.append(console.status(message))
            shown[0].start()

    try:
        yield update
    finally:
        if shown:
            shown[0].stop()


@contextmanager
def flags_as(flags: dict[str, str]) -> Iterator[None]:
    """Name the right command-line flag in a :class:`ParameterError` raised inside: the API says
    ``ratios['embedding']=`` or ``ratio=``, the user typed ``--embed-ratio`` or ``groups --check``."""
    from isodeploy.api import ParameterError

    try:
        yield
    except ParameterError as exc:
        if exc.param in flags:
            exc.flag = flags[exc.param]
        raise
