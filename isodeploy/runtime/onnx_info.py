"""What an ONNX file says about itself: metadata, precision, its image input — read once, without weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from isodeploy.core.errors import IsodeployError


def load_header(path: Path | str) -> onnx.ModelProto:
    """The graph without external weights; one clear line for a missing or foreign file."""
    from isodeploy.core.onnx_io import load_onnx

    return load_onnx(Path(path), load_weights=False)


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    """Metadata props with the ``isodeploy.`` prefix stripped (both spellings are accepted)."""
    from isodeploy.core.onnx_io import read_metadata

    return read_metadata(model)


def file_metadata(path: Path | str) -> dict[str, str]:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise IsodeployError(f"'{path}' is not a readable ONNX file ({type(exc).__name__})") from exc
    return {p.key: p.value for p in model.metadata_props}


def _casts_to_half(node: onnx.NodeProto) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in node.attribute)


def compute_precision(model: onnx.ModelProto) -> str:
    """``fp16`` when the graph computes in half precision anywhere inside, whatever its I/O types.

    A mixed-precision export keeps FP32 inputs and outputs and casts inside, so the I/O says nothing:
    look at the initializers, the Casts, Constant nodes and the declared value types.
    """
    half = onnx.TensorProto.FLOAT16
    if any(t.data_type == half for t in model.graph.initializer):
        return "fp16"
    for node in model.graph.node:
        if _casts_to_half(node):
            return "fp16"
        if node.op_type == "Constant" and any(a.t.data_type == half for a in node.attribute if a.type == onnx.AttributeProto.TENSOR):
            return "fp16"
    values = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    if any(v.type.tensor_type.elem_type == half for v in values):
        return "fp16"
    return "fp32"


def precision_of(model: onnx.ModelProto, meta: dict[str, str] | None = None) -> str:
    """The recorded precision when isodeploy wrote the file, else what the graph computes in."""
    meta = metadata(model) if meta is None else meta
    recorded = (meta.get("precision") or "").lower()
    found = compute_precision(model)
    if recorded in ("fp16", "fp32") and not (recorded == "fp32" and found == "fp16"):
        return recorded
    return found


def declared_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def meta_tuple(meta: dict[str, str], key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    from isodeploy.core.jsonread import JsonError, parse_json

    try:
        return tuple(float(v) for v in parse_json(meta[key], key))
    except (KeyError, ValueError, TypeError, JsonError):
        return default


def json_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    from isodeploy.core.jsonread import JsonError, parse_json

    try:
        data = parse_json(value, "metadata") if isinstance(value, str) else {}
    except JsonError:
        return {}
    return data if isinstance(data, dict) else {}
