"""Save a pruned model as ``model.safetensors`` + ``isodeploy.json`` and rebuild it from source + spec.

Reloading never unpickles code: the dense architecture is built from the spec's source (timm,
torchvision, a factory the caller trusts, or the dense model the caller passes), every parameter
and buffer is resized to the saved shape, the recorded module attributes are set (``num_heads``,
``in_features``, ``groups`` …), then the weights are loaded strictly. Tied tensors are saved once
and re-tied. Spec schema 2 records the source kind; schema-1 folders (timm only) still load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from isodeploy.core.version import __version__
from isodeploy.core.errors import IsodeployError
from isodeploy.core.hashing import sha256_file
from isodeploy.pruning.standardised import restore_baked

SCHEMA_VERSION = 2
SPEC_FILE = "isodeploy.json"
WEIGHTS_FILE = "model.safetensors"


def read_spec(folder: Path) -> dict[str, Any]:
    """Read and check ``isodeploy.json``: schema version and required fields."""
    from isodeploy.core.jsonread import read_json_file

    path = Path(folder) / SPEC_FILE
    if not path.exists() and not path.is_symlink():
        raise IsodeployError(f"'{folder}' holds no {SPEC_FILE}; pass an isodeploy output folder")
    if path.is_dir():
        raise IsodeployError(f"{path} is a folder, not a JSON text file; restore it or re-run 'isodeploy prune'")
    spec = read_json_file(path, "pruning spec", "restore it or re-run 'isodeploy prune'")
    if not isinstance(spec, dict):
        raise IsodeployError(f"{path} holds a JSON {type(spec).__name__}, not a pruning spec")
    schema = spec.get("schema")
    if not isinstance(schema, int):
        raise IsodeployError(f"{path} has no schema version; it was not written by isodeploy")
    if schema > SCHEMA_VERSION:
        raise IsodeployError(f"{path} uses spec schema {schema}, newer than this isodeploy ({SCHEMA_VERSION}); upgrade isodeploy")
    source_of_spec(spec, path)  # the source is valid and allow-listed, or one line says why
    from isodeploy.core.artifacts import validate_spec

    validate_spec(spec, path)  # types of input_size, mean/std, modules/attrs
    return spec


def source_of_spec(spec: dict[str, Any], where: object) -> "Source":
    """The spec's :class:`~isodeploy.zoo.sources.Source` (schema 1 and 2), allow-listed kwargs only."""
    from isodeploy.zoo.sources import source_from_json

    return source_from_json(spec.get("source"), str(where))


def source_label(spec: dict[str, Any]) -> str:
    """A display name of the spec's source (timm name, ``torchvision:NAME``, factory, custom)."""
    return source_of_spec(spec, SPEC_FILE).label



def write_folder(folder: Path, model: nn.Module, spec: dict[str, Any], force: bool = False) -> Path:
    """Write weights + spec into ``folder`` under its lock, each file atomically (temp + rename).

    Only ``model.safetensors`` and ``isodeploy.json`` are replaced; everything else in the folder (a
    pipeline's ONNX and reports, ``finetune/``, the user's notes) stays, and the pipeline's stage
    hashes notice the new weights. A folder holding files isodeploy did not write is refused, with
    ``force`` too; one holding another model is replaced only with ``force``; the folder the model
    was loaded from is refused.
    """
    from isodeploy.core.artifacts import legacy_entries
    from isodeploy.core.output_folder import open_output_folder

    try:  # a folder whose spec load would refuse is never written
        source_label(spec)
    except IsodeployError as exc:
        raise IsodeployError(f"cannot save: a reload could not rebuild the source model ({exc}); "
                             "create it with recordable arguments only") from None
    source = str(spec.get("source", {}).get("weights", ""))
    input_folder = Path(source[len("folder:"):]) if source.startswith("folder:") else None
    with open_output_folder(folder, adopt=legacy_entries, input_folder=input_folder, known_names=(WEIGHTS_FILE, SPEC_FILE)) as out:
        old = _old_spec(out.path)
        try:
            have = source_label(old) if old.get("source") else None
        except IsodeployError:
            have = None
        if have and have != source_label(spec) and not force:
            raise IsodeployError(f"-o {out.path} holds a pruned '{have}', not '{source_label(spec)}'; choose another folder or pass --force")
        out.claim(WEIGHTS_FILE, SPEC_FILE)
        _write_weights_and_spec(out.path, model, spec, old, keep=("pipeline",))
        return out.path


def _old_spec(folder: Path) -> dict[str, Any]:
    from isodeploy.core.jsonread import read_json_quietly

    old = read_json_quietly(Path(folder) / SPEC_FILE)
    return old if isinstance(old, dict) else {}


def _write_weights_and_spec(folder: Path, model: nn.Module, spec: dict[str, Any], old: dict[str, Any], keep: tuple[str, ...]) -> None:
    """Weights first, then the spec naming their hash: a kill between the two leaves a spec whose
    hash no longer matches, which every reader refuses and every re-run replaces."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from isodeploy.core.safe_write import atomic_path

    with atomic_path(folder / WEIGHTS_FILE) as tmp_weights:
        try:
            save_file(tensors_to_save(model), str(tmp_weights), metadata={"format": "pt", "isodeploy": __version__})
        except SafetensorError as exc:  # not an OSError: disk full, a read-only folder, a file-size limit
            raise safetensors_write_error(folder / WEIGHTS_FILE, exc) from None
        digest = sha256_file(tmp_weights)
    spec = dict(spec, weights_sha256=digest)
    spec.update({k: old[k] for k in keep if k in old})
    with atomic_path(folder / SPEC_FILE) as tmp_spec:
        tmp_spec.write_text(json.dumps(spec, indent=2, default=_jsonable) + "\n")


def safetensors_write_error(target: Path, exc: Exception) -> IsodeployError:
    """safetensors reports a failed write as ``SafetensorError: … I/O error: … (os error 28)``: the
    same one line as any other failed write (``cannot write PATH: No space left on device; …``)."""
    import errno
    import os
    import re

    from isodeploy.core.safe_write import cannot_write

    match = re.search(r"os error (\d+)", str(exc))
    code = int(match.group(1)) if match else errno.EIO
    return cannot_write(target, OSError(code, os.strerror(code)))


def tensors_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict plus non-persistent buffers (pruning may have sliced those too: BlurPool's
    filter), each tensor once: safetensors refuses shared storage, so a tied tensor is saved under
    its first name and :func:`tied_names` records the others."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for name, buffer in model.named_buffers():
        if name not in state and buffer is not None:
            state[name] = buffer.detach().contiguous()
    for alias in tied_names(model):
        state.pop(alias, None)
    return state


def tied_names(model: nn.Module) -> dict[str, str]:
    """Every other name of a tensor held under several names → its first name."""
    from isodeploy.pruning.apply import tied_aliases

    return {alias: first for first, aliases in tied_aliases(model, symmetric=False).items() for alias in aliases}


def write_into(folder: Path, model: nn.Module, spec: dict[str, Any], keep: tuple[str, ...] = ("pipeline",)) -> None:
    """Write weights + spec into a folder the caller already holds (the pipeline's locked output),
    file by file (temp + rename), keeping the ``keep`` sections of an existing spec."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_weights_and_spec(folder, model, spec, _old_spec(folder), keep)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)


def _resize_like(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Give every parameter/buffer the saved shape, so a strict load can follow."""
    for name, value in state.items():
        owner_name, _, attr = name.rpartition(".")
        try:
            owner = model.get_submodule(owner_name) if owner_name else model
        except AttributeError as exc:
            raise IsodeployError(f"saved tensor '{name}' has no place in the rebuilt model; the timm model changed?") from exc
        if attr in owner._parameters and owner._parameters[attr] is not None:
            old = owner._parameters[attr]
            if old.shape != value.shape:
                owner._parameters[attr] = nn.Parameter(torch.empty_like(value, dtype=old.dtype), requires_grad=old.requires_grad)
        elif attr in owner._buffers and owner._buffers[attr] is not None:
            if owner._buffers[attr].shape != value.shape:
                owner._buffers[attr] = torch.empty_like(value, dtype=owner._buffers[attr].dtype)


def _set_attrs(model: nn.Module, modules: list[dict[str, Any]]) -> None:
    """Restore what the fix-ups changed: only their attributes, with their types, agreeing with the
    resized tensors (isodeploy.pruning.restore says why), and the baked standardisations they noted."""
    from isodeploy.core.artifacts import check_restorable_attr
    from isodeploy.pruning.restore import check_consistent, checked_value

    for entry in modules:
        try:
            module = model.get_submodule(entry["module"]) if entry["module"] else model
        except AttributeError:
            raise IsodeployError(f"the spec names module '{entry['module']}', which the rebuilt model lacks; "
                                 "the source model changed, or the spec was edited") from None
        attrs = entry.get("attrs", {})
        for attr, value in attrs.items():
            check_restorable_attr(module, attr, value, entry["module"])
            setattr(module, attr, checked_value(module, attr, value, entry["module"]))
        if attrs:
            check_consistent(module, entry["module"], set(attrs))
        restore_baked(module, entry["module"], entry.get("notes"))


def rebuild(spec: dict[str, Any], state: dict[str, torch.Tensor], model: nn.Module | None = None,
            trusted_factory: str | None = None, trust: bool = False) -> nn.Module:
    """Build the dense architecture (``model``, copied, or the spec's source with random init and no
    download), reshape it per ``state`` and spec, re-tie shared tensors, load strictly."""
    import copy

    source = source_of_spec(spec, SPEC_FILE)
    label = source.label
    if model is not None:
        model = copy.deepcopy(model)
    else:
        model = source.create(pretrained=False, trusted_factory=trusted_factory, trust=trust)
        # What the file's kwargs built must answer like the pruned weights did (e.g. num_classes): the
        # output dims are never pruned, so the dense model's output shape is the recorded one.
        _check_output(model, spec, label, what="the source model built from the spec's kwargs")
    tied = spec.get("tied") or {}
    if not isinstance(tied, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tied.items()):
        raise IsodeployError("the spec's 'tied' must map tensor names to tensor names; the spec was edited")
    state = dict(state)
    for alias, first in tied.items():
        if first not in state:
            raise IsodeployError(f"the spec ties '{alias}' to '{first}', which the weights lack; the spec was edited")
        state[alias] = state[first]
    _resize_like(model, state)
    _set_attrs(model, spec.get("modules", []))
    own = model.state_dict()
    non_persistent = {name for name, _ in model.named_buffers() if name not in own}
    with torch.no_grad():
        for name in non_persistent & set(state):
            owner_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(owner_name) if owner_name else model
            owner._buffers[attr] = state[name].clone()
    state = {k: v for k, v in state.items() if k not in non_persistent}
    missing = [k for k in own if k not in state]
    if missing:
        raise IsodeployError(f"the weights lack '{missing[0]}' for the spec's source model '{label}' (a changed source model?)")
    extra = [k for k in state if k not in own]
    if extra:
        raise IsodeployError(f"the weights have '{extra[0]}', unknown to the spec's source model '{label}' (a changed source model?)")
    model.load_state_dict(state, strict=True)
    _retie(model, tied)
    _check_output(model, spec, label)
    model.train(True)
    model.eval()  # the round trip drops eval-mode caches built from the old shapes (LeViT)
    return model


def _retie(model: nn.Module, tied: dict[str, str]) -> None:
    """Make every alias the very same tensor object as its first name again (load_state_dict copies)."""
    for alias, first in tied.items():
        owner_name, _, attr = alias.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        first_owner_name, _, first_attr = first.rpartition(".")
        first_owner = model.get_submodule(first_owner_name) if first_owner_name else model
        tensor = getattr(first_owner, first_attr)
        (owner._parameters if attr in owner._parameters else owner._buffers)[attr] = tensor


def _check_output(model: nn.Module, spec: dict[str, Any], label: str, what: str = "") -> None:
    """The rebuilt model answers with the output shape recorded at prune time (what a file's
    ``num_classes`` claims is checked against the weights by running them)."""
    expected = spec.get("output_shape")
    size = spec.get("source", {}).get("input_size")
    if not isinstance(expected, list) or not isinstance(size, list):
        return
    from isodeploy.core.limits import check_input_fits

    check_input_fits(2, [int(v) for v in size], f"{SPEC_FILE} input_size")  # before the forward allocates it
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            out = model(torch.zeros(2, *[int(v) for v in size]))
            model.train(was)
    except Exception as exc:  # a spec whose attributes disagree with its weights
        raise IsodeployError(f"the rebuilt '{label}' does not run ({type(exc).__name__}: {str(exc)[:120]}); "
                             "the spec or weights were edited") from exc
    if isinstance(out, torch.Tensor) and list(out.shape[1:]) != expected:
        raise IsodeployError(f"{what or f'the rebuilt {label!r}'} answers {list(out.shape[1:])}, the spec recorded {expected}; "
                             "the spec or weights were edited")


def load_folder(folder: Path, model: nn.Module | None = None, trusted_factory: str | None = None, trust: bool = False):
    """A :class:`~isodeploy.zoo.LoadedModel` rebuilt from an output folder (``model``: the dense
    architecture to rebuild from, needed for folders saved from a custom model without a source)."""
    from safetensors.torch import load_file

    from isodeploy.zoo import LoadedModel
    from isodeploy.zoo.load import attach_source

    folder = Path(folder)
    spec = read_spec(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise IsodeployError(f"'{folder}' has {SPEC_FILE} but no {WEIGHTS_FILE}")
    expected = spec.get("weights_sha256")
    if not expected:  # without it, any weights file would pass for the pruned one
        raise IsodeployError(f"{folder / SPEC_FILE} records no weights_sha256, so {WEIGHTS_FILE} cannot be checked; "
                             "re-run 'isodeploy prune' (or isodeploy.save) to write the folder again")
    if sha256_file(weights) != expected:
        raise IsodeployError(f"{weights} does not match the spec (sha256 differs); re-run 'isodeploy prune' or restore the file")
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise IsodeployError(f"{weights} could not be read ({type(exc).__name__})") from exc
    from isodeploy.core.finite import check_finite_weights

    check_finite_weights(state.items(), f"weights file '{weights}'")
    pruned = rebuild(spec, state, model=model, trusted_factory=trusted_factory, trust=trust).eval()
    source = source_of_spec(spec, folder / SPEC_FILE)
    meta = spec["source"]
    loaded = LoadedModel(
        model=pruned,
        timm_name=source.label,
        input_size=tuple(meta["input_size"]),
        weights=f"folder:{folder}",
        folder=folder,
        create_kwargs=dict(source.kwargs),
        mean=tuple(meta.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(meta.get("std", (0.229, 0.224, 0.225))),
        num_classes=getattr(pruned, "num_classes", 1000),
        source=source,
    )
    attach_source(pruned, loaded)
    return loaded
