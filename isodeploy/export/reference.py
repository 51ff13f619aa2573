"""The reference side of ``verify``: a PyTorch model (alias, timm name, folder) or an FP32 ONNX file.

Also the one check that must come before any numbers: the candidate and the reference take the same
input shape. A mismatch is a user error (wrong ``--img-size``, wrong file), not a numeric failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError

DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)


@dataclass
class Reference:
    """A ready reference runner plus what inputs it expects."""

    runner: Any
    input_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label: str


def candidate_input_size(runner: Any) -> tuple[int, ...] | None:
    """Per-sample input shape (C, H, W) of an ONNX or engine runner; None when it is not fixed."""
    shapes = getattr(runner, "input_shapes", None)
    shape = None
    if isinstance(shapes, dict) and shapes:
        shape = shapes[runner.input_names[0]]
    else:
        meta = getattr(runner, "meta", None)
        inputs = getattr(meta, "inputs", None)
        if inputs:
            shape = list(getattr(inputs[0], "shape", []) or [])
    if not shape or any(not isinstance(d, int) or d <= 0 for d in shape[1:]):
        return None
    return tuple(int(d) for d in shape[1:])


def _meta_tuple(meta: dict[str, str], key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    from isodeploy.runtime.onnx_info import meta_tuple

    return meta_tuple(meta, key, default)


def open_reference(reference: str | None, candidate: Any, *, weights: str | None, img_size: int | None,
                   threads: int | None) -> Reference:
    """Build the reference runner. Without ``reference``, the model named in the candidate's metadata
    (``isodeploy.source_model``) is rebuilt with the options it was exported with and named weights
    (pretrained, random); a weights file or pruned folder only when the user passes it (or, for a
    pruned folder, when it is the folder holding the candidate)."""
    from isodeploy.runtime.ort import OrtRunner

    meta: dict[str, str] = getattr(candidate, "metadata", None) or _source_onnx_metadata(candidate)
    if reference is None:
        return _reference_from_metadata(candidate, meta, weights, img_size)
    if reference.lower().endswith(".onnx"):
        runner = OrtRunner(reference, threads=threads)
        if runner.precision != "fp32":
            raise IsodeployError(f"reference '{reference}' is an {runner.precision} ONNX; the reference must be FP32")
        size = candidate_input_size(runner)
        if size is None:
            raise IsodeployError(f"reference '{reference}' has no fixed input size (C, H, W); it cannot be fed random images")
        return Reference(runner, size, _meta_tuple(runner.metadata, "mean", DEFAULT_MEAN),
                         _meta_tuple(runner.metadata, "std", DEFAULT_STD), str(reference))
    return _torch_reference(reference, candidate, weights or "pretrained", img_size, {})


def _reference_from_metadata(candidate: Any, meta: dict[str, str], weights: str | None, img_size: int | None) -> Reference:
    """The model the candidate's metadata names, rebuilt by *name* only: a pruned model from the
    isodeploy folder that holds the candidate (same weights hash), never a folder or weights file the
    metadata points at (isodeploy.core.provenance says why)."""
    from isodeploy.zoo.onnx_source import read_onnx_source_meta
    from isodeploy.core.provenance import names_a_path, own_folder, reference_weights

    where = str(getattr(candidate, "name", "the candidate"))
    path = getattr(candidate, "path", None)
    if meta.get("source_folder") or meta.get("spec_hash"):  # a pruned model: only its own folder will do
        folder = own_folder(path, meta)
        if folder is None:
            name = meta.get("source_folder") or "its isodeploy folder"
            raise IsodeployError(f"{where} was exported from the pruned folder '{name}', which is not the folder holding it; "
                                 f"verify loads a reference only from what you pass: add --reference PATH/TO/{name}")
        return _torch_reference(str(folder), candidate, "pretrained", img_size, {})
    if "source_model" not in meta:
        raise IsodeployError(f"{candidate.name} names no source model in its metadata; pass --reference MODEL or --reference FP32.onnx")
    typed = read_onnx_source_meta(meta, where)  # one line when edited
    reference = typed["source_model"]
    if names_a_path(reference):
        raise IsodeployError(f"{where} names '{reference[:80]}' as its source, a path (or a name a file or folder here "
                             "shadows); a file does not choose what verify loads: pass --reference MODEL|FOLDER|FP32.onnx")
    weights = reference_weights(meta, weights, where)
    kwargs = dict(typed["create_kwargs"])
    size = kwargs.pop("img_size", None)
    exported = typed["input_size"] or ()
    if size is None and len(exported) == 3 and exported[1] == exported[2]:
        size = int(exported[2])  # fully convolutional models take the size at run time, not as a kwarg
    size = img_size if img_size is not None else size
    return _torch_reference(reference, candidate, weights, size, kwargs)


def _source_onnx_metadata(candidate: Any) -> dict[str, str]:
    """An engine records the ONNX it was built from; that file's metadata names the model."""
    source = getattr(getattr(candidate, "meta", None), "source_onnx", None)
    if not source or not Path(source).is_file():
        return {}
    from isodeploy.core.onnx_io import load_onnx, read_metadata

    try:
        return read_metadata(load_onnx(source, load_weights=False))
    except IsodeployError:
        return {}


def _torch_reference(query: str, candidate: Any, weights: str, img_size: int | None, kwargs: dict[str, Any]) -> Reference:
    from isodeploy.runtime.torch_runner import TorchRunner
    from isodeploy.loading import load_model

    loaded = load_model(query, weights=weights, img_size=img_size, **kwargs)
    runner = TorchRunner(loaded.model, name=f"torch:{loaded.timm_name}", output_names=list(candidate.output_names))
    return Reference(runner, tuple(loaded.input_size), tuple(loaded.mean), tuple(loaded.std), query)


def check_same_input(candidate: Any, artifact: Path, ref: Reference) -> tuple[int, ...]:
    """The input shape both sides take, or one line naming both shapes and the fix."""
    cand = candidate_input_size(candidate)
    if cand is None:
        return ref.input_size
    if tuple(cand) != tuple(ref.input_size):
        fmt = lambda s: "x".join(str(d) for d in s)  # noqa: E731
        square = len(cand) == 3 and cand[-1] == cand[-2]
        hint = f"; pass --img-size {cand[-1]}" if square and not str(ref.label).lower().endswith(".onnx") else ""
        raise IsodeployError(f"input shape mismatch: '{artifact}' takes {fmt(cand)} but the reference '{ref.label}' "
                             f"expects {fmt(ref.input_size)}{hint}")
    return cand
