"""What an ARTIFACT argument names (model, isodeploy folder, .onnx, .plan) and what it can run on.

Resolved up front, before any model is built, so that a typo or an impossible runtime fails in a
second with one line instead of after minutes of benchmarking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError

ONNX_SUFFIXES = (".onnx",)
PLAN_SUFFIXES = (".plan", ".engine")
RUNTIMES = ("torch", "ort", "trt")
#: which runtimes can run each artifact kind (a model can be exported on the fly)
RUNNABLE = {
    "model": ("torch", "ort", "trt"),
    "folder": ("torch", "ort", "trt"),
    "onnx": ("ort", "trt"),
    "plan": ("trt",),
}


@dataclass
class ArtifactRef:
    """A resolved ARTIFACT: its kind, a stable label, and whether it is a pruned (non-uniform) model."""

    query: str
    kind: str
    label: str
    path: Path | None = None
    pruned: bool = False
    #: a MODEL string (alias, timm name or folder) this artifact was made from, when known
    source_model: str | None = None
    #: timm creation kwargs the source was built with (from the ONNX metadata), to rebuild it for MACs
    source_kwargs: dict[str, Any] = field(default_factory=dict)
    img_size: int | None = None
    role: str = ""  # dense | pruned | uniform-twin | standard, when the caller says (selects the ratios reported)


def resolve_artifact(query: str, img_size: int | None = None) -> ArtifactRef:
    """Classify ``query``; an unknown file type or a missing file is one clear error."""
    path = Path(query)
    suffix = path.suffix.lower()
    from isodeploy.loading import model_folder, names_a_model

    if model_folder(query) is not None and model_folder(query).is_dir() or (path.is_dir() and not names_a_model(query)):
        from isodeploy.zoo import SPEC_FILE

        if not (path / SPEC_FILE).is_file():
            raise IsodeployError(f"'{query}' is a folder but holds no {SPEC_FILE}; pass an isodeploy output folder, a model name, a .onnx or a .plan")
        return ArtifactRef(query, "folder", path.resolve().name, path, pruned=True, source_model=str(path), img_size=img_size)
    if suffix in ONNX_SUFFIXES + PLAN_SUFFIXES:
        if not path.is_file():
            raise IsodeployError(f"artifact '{query}' does not exist")
        kind = "onnx" if suffix in ONNX_SUFFIXES else "plan"
        meta = onnx_metadata(path) if kind == "onnx" else _plan_source_metadata(path)
        source = _first(meta, ("isodeploy.source_model", "source_model"))
        from isodeploy.core.provenance import names_a_path, own_folder
        from isodeploy.zoo.sources import check_file_source

        # a file names no path to load (for MACs): a pruned model only from the folder holding it
        own = own_folder(path, {k.removeprefix("isodeploy."): v for k, v in meta.items()})
        source = str(own) if own is not None else (None if source and names_a_path(str(source)) else source)
        kwargs = check_file_source(str(source), _json_dict(_first(meta, ("isodeploy.create_kwargs", "create_kwargs"))),
                                   f"metadata of '{query}'") if source else {}
        pruned = bool(_first(meta, ("isodeploy.spec_hash", "spec_hash"))) or (source is not None and Path(str(source)).is_dir())
        return ArtifactRef(query, kind, path.name, path, pruned=pruned, source_model=str(source) if source else None,
                           source_kwargs=kwargs, img_size=img_size)
    if path.is_file() or (suffix and ("/" in query or "\\" in query)):
        raise IsodeployError(
            f"unknown artifact type '{suffix or path.name}' for '{query}': expected a model name or alias, an isodeploy folder, a .onnx or a .plan"
        )
    from isodeploy.loading import resolve

    ref = resolve(query)  # raises with close matches for an unknown model name
    label = ref.timm_name if img_size is None else f"{ref.timm_name}@{img_size}"
    return ArtifactRef(query, "model", label, pruned=False, source_model=query, img_size=img_size)


def runtimes_for(ref: ArtifactRef, runtimes: tuple[str, ...]) -> tuple[str, ...]:
    """The asked runtimes this artifact can run on (a .onnx skips torch); none at all is an error."""
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            raise IsodeployError(f"unknown runtime '{runtime}': choose from {', '.join(RUNTIMES)}")
    usable = tuple(r for r in runtimes if r in RUNNABLE[ref.kind])
    if not usable:
        allowed = " or ".join(RUNNABLE[ref.kind])
        article = "an" if ref.kind[0] in "aeiou" else "a"
        raise IsodeployError(f"'{ref.query}' is {article} {ref.kind} artifact and cannot run on runtime {'/'.join(runtimes)}; use --runtime {allowed}")
    return usable


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's metadata props, read without loading the weights (one reader: the runtime layer's)."""
    from isodeploy.runtime.onnx_info import file_metadata

    return file_metadata(path)


def plan_metadata(path: Path) -> dict[str, Any]:
    """The engine's ``.plan.json`` metadata (written by build-engine), or {} when absent."""
    meta = Path(str(path) + ".json")
    if not meta.is_file():
        return {}
    from isodeploy.core.jsonread import read_json_file

    data = read_json_file(meta, "engine metadata file", "rebuild the engine with 'isodeploy build-engine'")
    return data if isinstance(data, dict) else {}


def _first(meta: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if meta.get(key):
            return meta[key]
    return None


def _json_dict(value: Any) -> dict[str, Any]:
    from isodeploy.runtime.onnx_info import json_dict

    return json_dict(value)


def _plan_source_metadata(path: Path) -> dict[str, Any]:
    """An engine names its source ONNX in ``.plan.json``; that ONNX's metadata names the model."""
    source_onnx = plan_metadata(path).get("source_onnx")
    if source_onnx and Path(source_onnx).is_file():
        try:
            return onnx_metadata(Path(source_onnx))
        except IsodeployError:
            return {}
    return {}
