"""Save a pruned model as ``model.safetensors`` + ``isodeploy.json`` and rebuild it from timm + spec.

Reloading never unpickles code: the timm model is created as the spec says, every parameter and
buffer is resized to the saved shape, the recorded module attributes are set (``num_heads``,
``in_features``, ``groups`` …), then the weights are loaded strictly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from isodeploy import __version__
from isodeploy.errors import IsodeployError
from isodeploy.fileio import sha256_file

SCHEMA_VERSION = 1
SPEC_FILE = "isodeploy.json"
WEIGHTS_FILE = "model.safetensors"


def read_spec(folder: Path) -> dict[str, Any]:
    """Read and check ``isodeploy.json``: schema version and required fields."""
    path = Path(folder) / SPEC_FILE
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise IsodeployError(f"'{folder}' holds no {SPEC_FILE}; pass an isodeploy output folder") from exc
    except json.JSONDecodeError as exc:
        raise IsodeployError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    schema = spec.get("schema")
    if not isinstance(schema, int):
        raise IsodeployError(f"{path} has no schema version; it was not written by isodeploy")
    if schema > SCHEMA_VERSION:
        raise IsodeployError(f"{path} uses spec schema {schema}, newer than this isodeploy ({SCHEMA_VERSION}); upgrade isodeploy")
    if "source" not in spec or "timm" not in spec["source"]:
        raise IsodeployError(f"{path} names no source model")
    return spec


def read_spec_source(folder: Path) -> str:
    return read_spec(folder)["source"]["timm"]


def write_folder(folder: Path, model: nn.Module, spec: dict[str, Any], force: bool = False) -> Path:
    """Write weights + spec into ``folder`` under its lock, each file atomically (temp + rename).

    Only ``model.safetensors`` and ``isodeploy.json`` are replaced; everything else in the folder (a
    pipeline's ONNX and reports, ``finetune/``, the user's notes) stays, and the pipeline's stage
    hashes notice the new weights. A folder holding files isodeploy did not write is refused, with
    ``force`` too; one holding another model is replaced only with ``force``; the folder the model
    was loaded from is refused.
    """
    from isodeploy.core.artifacts import legacy_entries
    from isodeploy.core.fileio import open_output_folder

    source = str(spec.get("source", {}).get("weights", ""))
    input_folder = Path(source[len("folder:"):]) if source.startswith("folder:") else None
    with open_output_folder(folder, adopt=legacy_entries, input_folder=input_folder, known_names=(WEIGHTS_FILE, SPEC_FILE)) as out:
        old = _old_spec(out.path)
        have = old.get("source", {}).get("timm") if isinstance(old.get("source"), dict) else None
        if have and have != spec["source"]["timm"] and not force:
            raise IsodeployError(f"-o {out.path} holds a pruned '{have}', not '{spec['source']['timm']}'; choose another folder or pass --force")
        out.claim(WEIGHTS_FILE, SPEC_FILE)
        _write_weights_and_spec(out.path, model, spec, old, keep=("pipeline",))
        return out.path


def _old_spec(folder: Path) -> dict[str, Any]:
    try:
        old = json.loads((Path(folder) / SPEC_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return old if isinstance(old, dict) else {}


def _write_weights_and_spec(folder: Path, model: nn.Module, spec: dict[str, Any], old: dict[str, Any], keep: tuple[str, ...]) -> None:
    """Weights first, then the spec naming their hash: a kill between the two leaves a spec whose
    hash no longer matches, which every reader refuses and every re-run replaces."""
    from safetensors.torch import save_file

    from isodeploy.core.fileio import atomic_path

    with atomic_path(folder / WEIGHTS_FILE) as tmp_weights:
        save_file(tensors_to_save(model), str(tmp_weights), metadata={"format": "pt", "isodeploy": __version__})
        digest = sha256_file(tmp_weights)
    spec = dict(spec, weights_sha256=digest)
    spec.update({k: old[k] for k in keep if k in old})
    with atomic_path(folder / SPEC_FILE) as tmp_spec:
        tmp_spec.write_text(json.dumps(spec, indent=2, default=_jsonable) + "\n")


def tensors_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict plus non-persistent buffers: pruning may have sliced those too (BlurPool's
    filter), and a rebuilt model would otherwise come back with their old shapes."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for name, buffer in model.named_buffers():
        if name not in state and buffer is not None:
            state[name] = buffer.detach().contiguous()
    return state


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
    for entry in modules:
        module = model.get_submodule(entry["module"]) if entry["module"] else model
        for attr, value in entry.get("attrs", {}).items():
            if not hasattr(module, attr):
                raise IsodeployError(f"module '{entry['module']}' has no attribute '{attr}' to restore; the timm model changed?")
            setattr(module, attr, tuple(value) if isinstance(value, list) else value)


def rebuild(spec: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """Create the source timm model (random init, no download), reshape it per ``state`` and spec, load."""
    import timm

    source = spec["source"]
    if not timm.is_model(source["timm"]):
        raise IsodeployError(f"the spec's source model '{source['timm']}' is unknown to timm {timm.__version__}")
    kwargs = source.get("create_kwargs", {})
    try:
        model = timm.create_model(source["timm"], pretrained=False, **kwargs)
    except Exception as exc:  # timm raises TypeError/ValueError/AssertionError for bad kwargs
        raise IsodeployError(f"could not rebuild the spec's source model '{source['timm']}' with {kwargs} "
                             f"({type(exc).__name__}: {str(exc)[:120]}); was the spec edited or made by another timm?") from exc
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
        raise IsodeployError(f"the weights lack '{missing[0]}' for the spec's source model '{source['timm']}' (a changed source model?)")
    extra = [k for k in state if k not in own]
    if extra:
        raise IsodeployError(f"the weights have '{extra[0]}', unknown to the spec's source model '{source['timm']}' (a changed source model?)")
    model.load_state_dict(state, strict=True)
    model.train(True)
    model.eval()  # the round trip drops eval-mode caches built from the old shapes (LeViT)
    return model


def load_folder(folder: Path):
    """``isodeploy.load(DIR)``: a :class:`~isodeploy.zoo.LoadedModel` rebuilt from an output folder."""
    from safetensors.torch import load_file

    from isodeploy.zoo import LoadedModel

    folder = Path(folder)
    spec = read_spec(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise IsodeployError(f"'{folder}' has {SPEC_FILE} but no {WEIGHTS_FILE}")
    expected = spec.get("weights_sha256")
    if expected and sha256_file(weights) != expected:
        raise IsodeployError(f"{weights} does not match the spec (sha256 differs); re-run 'isodeploy prune' or restore the file")
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise IsodeployError(f"{weights} could not be read ({type(exc).__name__})") from exc
    model = rebuild(spec, state).eval()
    source = spec["source"]
    return LoadedModel(
        model=model,
        timm_name=source["timm"],
        input_size=tuple(source["input_size"]),
        weights=f"folder:{folder}",
        folder=folder,
        create_kwargs=source.get("create_kwargs", {}),
        mean=tuple(source.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(source.get("std", (0.229, 0.224, 0.225))),
        num_classes=getattr(model, "num_classes", 1000),
    )
