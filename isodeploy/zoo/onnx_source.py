"""The model source an exported ONNX records in its metadata, read back as untrusted input.

An ONNX file names its source by name and hash only (never a local path); every value is checked
here — one-line names, allow-listed kwargs (no factory on a file's word), bounded sizes — before
``verify`` rebuilds a reference from it.
"""

from __future__ import annotations

import json
from typing import Any

from isodeploy.core.artifacts import check_input_size, check_triple
from isodeploy.core.errors import IsodeployError
from isodeploy.zoo.sources import check_file_source  # allow-listed kwargs; no factory on a file's word


def _meta_json(meta: dict[str, str], key: str, where: str) -> Any:
    raw = meta.get(key)
    if raw is None:
        return None
    from isodeploy.core.jsonread import JsonError, parse_json

    try:
        return parse_json(raw, f"metadata 'isodeploy.{key}'")
    except JsonError as exc:
        raise IsodeployError(f"{where}: {exc} ({str(raw)[:40]!r}); the file was edited: re-export it with 'isodeploy export'") from None


def read_onnx_source_meta(meta: dict[str, str], where: str) -> dict[str, Any]:
    """The typed source fields of an ONNX file's ``isodeploy.*`` metadata (as :func:`read_metadata`
    returns them): ``source_model`` (str), ``weights`` (str), ``create_kwargs`` (dict),
    ``input_size`` ([C, H, W] or None), ``mean``/``std`` (lists or None). One line when malformed."""
    out: dict[str, Any] = {}
    for key in ("source_model", "weights"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip() or "\n" in value):
            raise IsodeployError(f"{where}: metadata 'isodeploy.{key}' is not a one-line name; the file was edited")
        out[key] = value
    kwargs = _meta_json(meta, "create_kwargs", where)
    if kwargs is not None and not isinstance(kwargs, dict):
        raise IsodeployError(f"{where}: metadata 'isodeploy.create_kwargs' must be a JSON object; got {type(kwargs).__name__}")
    out["create_kwargs"] = check_file_source(out.get("source_model"), kwargs or {}, where)
    size = _meta_json(meta, "input_size", where)
    out["input_size"] = check_input_size(size, f"{where} metadata") if size not in (None, []) else None
    for key in ("mean", "std"):
        value = _meta_json(meta, key, where)
        if value is not None:
            check_triple(value, f"{where} metadata", key)
        out[key] = value
    return out
