"""Typed checks of what isodeploy reads back from files it (supposedly) wrote.

Files can be edited, truncated or crafted. Every reader validates types and ranges here and says
what is wrong in one :class:`IsodeployError` line, instead of failing deep inside with a
``KeyError``/``TypeError`` traceback. What a file may *choose* (e.g. timm create kwargs) is limited
by its consumer; this module only checks the shape of the data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from isodeploy.core.bounds import MAX_SIDE
from isodeploy.core.errors import IsodeployError

STATE_FILE = "isodeploy.json"
MAX_INPUT_SIDE = MAX_SIDE  # pixels; larger is not a vision model input we can run
MAX_CHANNELS = 64


def read_json_object(path: Path, what: str = "file") -> dict[str, Any]:
    """A JSON object from ``path``, or one line saying why not (the bounded reader: core/jsonread.py)."""
    from isodeploy.core.jsonread import read_json_file

    data = read_json_file(path, what)
    if not isinstance(data, dict):
        raise IsodeployError(f"{path} holds a JSON {type(data).__name__}, not the object a {what} is")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def check_input_size(value: Any, where: str) -> tuple[int, int, int]:
    """``[C, H, W]`` with sane positive sizes."""
    if (not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_int(v) for v in value)
            or not 1 <= value[0] <= MAX_CHANNELS or not all(1 <= v <= MAX_INPUT_SIDE for v in value[1:])):
        raise IsodeployError(f"{where}: input_size must be [channels, height, width] with 1..{MAX_CHANNELS} channels "
                             f"and sides 1..{MAX_INPUT_SIDE}; got {str(value)[:60]}")
    return tuple(value)  # type: ignore[return-value]


def check_triple(value: Any, where: str, name: str) -> None:
    if not isinstance(value, (list, tuple)) or not value or not all(_is_number(v) for v in value):
        raise IsodeployError(f"{where}: {name} must be a list of finite numbers; got {str(value)[:60]}")


ATTR_VALUE_TYPES = (int, float, bool, str)


def check_attr_value(value: Any) -> bool:
    """A restorable module attribute is a plain number/bool/str or a list of those (a shape)."""
    if isinstance(value, list):
        return all(isinstance(v, ATTR_VALUE_TYPES) for v in value)
    return value is None or isinstance(value, ATTR_VALUE_TYPES)


def validate_spec(spec: Any, path: Path) -> dict[str, Any]:
    """Check the types of an ``isodeploy.json`` pruning spec (the reader in prune/spec.py calls this)."""
    where = str(path)
    if not isinstance(spec, dict):
        raise IsodeployError(f"{where} holds a JSON {type(spec).__name__}, not a pruning spec")
    source = spec.get("source")
    if not isinstance(source, dict):
        raise IsodeployError(f"{where} names no source model ('source' must be an object)")
    # kind, name and allow-listed kwargs are checked by isodeploy.zoo.sources.source_from_json
    if "input_size" in source:
        check_input_size(source["input_size"], where)
    for key in ("mean", "std"):
        if key in source:
            check_triple(source[key], where, f"source.{key}")
    for key in ("create_kwargs", "kwargs"):
        if key in source and not isinstance(source[key], dict):
            raise IsodeployError(f"{where}: source.{key} must be an object; got {type(source[key]).__name__}")
    modules = spec.get("modules", [])
    if not isinstance(modules, list):
        raise IsodeployError(f"{where}: modules must be a list; got {type(modules).__name__}")
    for i, entry in enumerate(modules):
        if not isinstance(entry, dict) or not isinstance(entry.get("module"), str):
            raise IsodeployError(f"{where}: modules[{i}] must be an object with a 'module' path")
        attrs = entry.get("attrs", {})
        if not isinstance(attrs, dict):
            raise IsodeployError(f"{where}: modules[{i}].attrs must be an object")
        for attr, value in attrs.items():
            if attr.startswith("_") or not check_attr_value(value):
                raise IsodeployError(f"{where}: modules[{i}] ('{entry['module']}') attribute '{attr}' = {str(value)[:40]} "
                                     "is not a restorable value (plain numbers, booleans, strings or lists of them)")
    if "weights_sha256" in spec and not isinstance(spec["weights_sha256"], str):
        raise IsodeployError(f"{where}: weights_sha256 must be a string")
    return spec


def check_restorable_attr(module: Any, attr: str, value: Any, module_path: str) -> None:
    """A spec may set only plain data attributes that the rebuilt module already has: never a
    method, a parameter, a buffer or a submodule (a crafted spec must not rewire the model)."""
    import torch
    from torch import nn

    if not hasattr(module, attr) or attr.startswith("_"):
        raise IsodeployError(f"module '{module_path}' has no attribute '{attr}' to restore; the timm model changed, or the spec was edited")
    current = getattr(module, attr)
    if (callable(current) or isinstance(current, (nn.Module, torch.Tensor))
            or attr in getattr(module, "_parameters", {}) or attr in getattr(module, "_buffers", {})
            or attr in getattr(module, "_modules", {})):
        raise IsodeployError(f"the spec sets '{module_path}.{attr}', which is a {type(current).__name__}, not a plain attribute; "
                             "the spec was edited: re-run 'isodeploy prune'")
    if current is not None and not check_attr_value(list(current) if isinstance(current, tuple) else current):
        raise IsodeployError(f"the spec sets '{module_path}.{attr}', which is a {type(current).__name__}; the spec was edited")
    if not check_attr_value(value):
        raise IsodeployError(f"the spec's value for '{module_path}.{attr}' is not plain data; the spec was edited")


def legacy_entries(folder: Path) -> set[str] | None:
    """What isodeploy wrote into an output folder made before the ownership marker existed, read from
    its ``isodeploy.json``; None when the folder is not an isodeploy output."""
    from isodeploy.core.jsonread import read_json_quietly

    state = read_json_quietly(Path(folder) / STATE_FILE)
    if not isinstance(state, dict) or not ("source" in state or "pipeline" in state):
        return None
    names = {STATE_FILE}
    if isinstance(state.get("schema"), int):
        names.add("model.safetensors")
    pipeline = state.get("pipeline")
    stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
    if isinstance(stages, dict):
        names |= {"model.safetensors", "report.md", "report.json"}
        for record in stages.values():
            outputs = record.get("outputs", []) if isinstance(record, dict) else []
            if not isinstance(outputs, list):
                continue
            for out in outputs:
                parts = Path(out).parts if isinstance(out, str) else ()
                if parts and not Path(out).is_absolute() and ".." not in parts and parts[0] != ".":
                    names.add(parts[0])
    return names


def check_fraction(value: float | None, name: str, *, low: float = 0.0, high: float = 1.0,
                   low_open: bool = False, high_open: bool = True) -> None:
    """Refuse NaN, infinities and values outside [low, high) (bounds configurable)."""
    if value is None:
        return
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise IsodeployError(f"{name} must be a number in {lo}{low:g}, {high:g}{hi}; got {value}")


def pickle_refusal(path: Path, exc: BaseException, what: str = "weights file") -> IsodeployError | None:
    """The one-line refusal for a file ``torch.load(weights_only=True)`` would not open because it
    holds pickled objects (code could run on load); None for other read errors."""
    # torch names the class it would have had to import; garbage bytes fail with other messages
    # torch ≤ 2.13: "Unsupported global: GLOBAL x.Y was not an allowed global"; 2.14 also says "Trying to
    # load unsupported GLOBAL os.system whose module os is blocked"
    text = str(exc).lower()
    if "unsupported global" in text or "not an allowed global" in text:
        return IsodeployError(f"{what} '{path}' was not loaded: it holds pickled objects (loading them could run code); "
                              "re-save it as safetensors: safetensors.torch.save_file(state_dict, 'model.safetensors')")
    return None


def validate_bench_dict(data: dict[str, Any], where: str) -> None:
    """The JSON shape of a saved bench report, before it is rebuilt: ``results`` a list of objects,
    each with a ``latency`` object (and ``memory`` an object or null); ``env``/``settings`` objects;
    ``notes``/``ratios`` lists. A damaged file is one line, never a ValueError or AttributeError."""
    def bad(what: str) -> IsodeployError:
        return IsodeployError(f"{where} is a damaged bench report: {what}; re-create it with 'isodeploy bench --json'")

    results = data.get("results")
    if not isinstance(results, list):
        raise bad(f"'results' is a {type(results).__name__}, not a list")
    for i, item in enumerate(results):
        if not isinstance(item, dict):
            raise bad(f"results[{i}] is a {type(item).__name__}, not an object")
        if not isinstance(item.get("latency"), dict):
            raise bad(f"results[{i}].latency is not an object")
        if item.get("memory") is not None and not isinstance(item["memory"], dict):
            raise bad(f"results[{i}].memory is not an object")
    for key, kind in (("env", dict), ("settings", dict), ("notes", list), ("ratios", list)):
        if key in data and not isinstance(data[key], kind):
            raise bad(f"'{key}' is a {type(data[key]).__name__}, not a{'n object' if kind is dict else ' list'}")


def validate_bench_results(results: Any, where: str) -> None:
    """The fields of bench results that gates, comparisons and tables compute with: text names,
    a positive integer batch, finite non-negative latencies and samples."""
    def bad(i: int, what: str) -> IsodeployError:
        return IsodeployError(f"{where} is a damaged bench report: results[{i}] {what}; re-create it with 'isodeploy bench --json'")

    if not isinstance(results, list):
        raise IsodeployError(f"{where} is a damaged bench report: 'results' is not a list")
    for i, r in enumerate(results):
        for attr in ("label", "runtime", "device", "precision"):
            if not isinstance(getattr(r, attr, None), str):
                raise bad(i, f"has no text '{attr}'")
        batch = getattr(r, "batch", None)
        if not _is_int(batch) or batch < 1:
            raise bad(i, f"has batch {batch!r}")
        lat = getattr(r, "latency", None)
        for attr in ("mean_ms", "p50_ms", "p90_ms", "p99_ms"):
            value = getattr(lat, attr, None)
            if not _is_number(value) or value < 0:
                raise bad(i, f"has latency {attr} {value!r}")
        for attr in ("samples_ms", "rounds_ms"):
            values = getattr(lat, attr, [])
            if not isinstance(values, list) or not all(_is_number(x) and x >= 0 for x in values):
                raise bad(i, f"has non-numeric latency {attr}")
        for attr in ("macs", "params"):
            value = getattr(r, attr, None)
            if value is not None and (not _is_int(value) or value < 0):
                raise bad(i, f"has {attr} {value!r}")
