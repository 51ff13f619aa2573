"""Mixed-precision ONNX for TensorRT's strongly typed builds: FP16 weights and compute, an FP32 block list.

TensorRT 11 removed ``BuilderFlag.FP16``; in a strongly typed network the ONNX tensor types decide the
precision. The conversion itself is onnxconverter-common's ``convert_float_to_float16``; this module adds
what it lacks:

* the block list — ops that lose accuracy or overflow in FP16 (LayerNormalization, Softmax, sum-type
  reductions, Pow/Sqrt) plus every node whose activations on calibration inputs exceed ``safe_range``;
* no FP16 round trip between two FP32 nodes (the converter leaves one on tensors with several readers,
  which overflows exactly the activations that were blocked for their size);
* work-arounds for two converter bugs on exported graphs: it retypes the output of an existing
  ``Cast(to=float)`` without changing the cast (a type error at load), so such casts are kept as they
  are and followed by a Cast to FP16; and an initializer shared by a blocked and an unblocked node
  (exporters de-duplicate equal constants) gets one type for both, so blocked nodes get their own copy;
* a report of which nodes stayed FP32 and why.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from isodeploy.core.errors import IsodeployError

#: ops kept in FP32 regardless of their values: normalisations, softmax, sum-type reductions, powers and roots
DEFAULT_BLOCK_OPS: tuple[str, ...] = (
    "LayerNormalization", "GroupNormalization", "InstanceNormalization", "Softmax", "LogSoftmax",
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceProd",
    "GlobalAveragePool", "Pow", "Sqrt", "Reciprocal",
)
#: largest |activation| allowed in FP16: a quarter of FP16's max (65504) leaves headroom for inputs
#: that are larger than the calibration ones
SAFE_RANGE = 16384.0
FP16_MAX = 65504.0


@dataclass
class Fp16Report:
    """What ``convert_fp16`` wrote; ``fp32_nodes`` lists every node kept in FP32 with its reason."""

    path: str
    source: str
    fp32_nodes: list[dict[str, str]]
    fp16_nodes: int
    total_nodes: int
    casts_added: int
    calib_batches: int
    safe_range: float
    max_activation: float
    block_ops: list[str]
    keep_io_types: bool
    seconds: float
    size_bytes: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _name_nodes(model: Any) -> None:
    """The converter blocks nodes by name; give unnamed or duplicate-named nodes unique names."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}" if f"{node.op_type}_{i}" not in seen else f"{node.op_type}_{i}_{len(seen)}"
        seen.add(node.name)


def _blocked_nodes(model: Any, ranges: dict[str, float], block_ops: tuple[str, ...], safe_range: float) -> dict[str, tuple[str, str]]:
    """name → (op, reason) for every node that must stay FP32."""
    import onnx
    from onnx import numpy_helper
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST

    weight_peak = {}
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            values = numpy_helper.to_array(t)
            if values.size:
                weight_peak[t.name] = float(np.abs(values).max())
    blocked: dict[str, tuple[str, str]] = {}
    for node in model.graph.node:
        reason = None
        if node.op_type in block_ops:
            reason = "block list"
        elif node.op_type in DEFAULT_OP_BLOCK_LIST:
            reason = "no FP16 kernel in onnxruntime"
        elif node.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute):
            # The converter retypes a Cast's output without changing its ``to``; kept, a Cast(to=float16) follows.
            reason = "Cast to FP32 in the exported graph"
        else:
            for tensor in [*node.input, *node.output]:
                peak = ranges.get(tensor, weight_peak.get(tensor, 0.0))
                if peak > safe_range:
                    kind = "weight" if tensor in weight_peak else "activation"
                    reason = f"{kind} '{tensor}' reaches |x| = {peak:.4g} > safe range {safe_range:g}"
                    break
        if reason:
            blocked[node.name] = (node.op_type, reason)
    return blocked


def _split_shared_initializers(model: Any, blocked: dict[str, tuple[str, str]]) -> None:
    """Give blocked nodes their own FP32 copy of a float initializer that unblocked nodes also read."""
    import onnx

    floats = {t.name: t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    readers: dict[str, set[bool]] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in floats:
                readers.setdefault(name, set()).add(node.name in blocked)
    shared = {name for name, kinds in readers.items() if kinds == {True, False}}
    for name in shared:
        copy = model.graph.initializer.add()
        copy.CopyFrom(floats[name])
        copy.name = f"{name}__fp32"
    for node in model.graph.node:
        if node.name in blocked:
            for i, name in enumerate(node.input):
                if name in shared:
                    node.input[i] = f"{name}__fp32"


def _bypass_fp16_round_trips(model: Any) -> int:
    """Remove ``Cast(to=float16) → Cast(to=float)`` pairs on FP32 tensors; returns how many were bypassed.

    The converter puts an FP16 round trip on every edge between two FP32 (blocked) nodes and removes it
    only when the tensor has a single reader. A round trip overflows exactly the large activations the
    nodes were blocked for, so every reader of the second Cast is rewired to the original FP32 tensor.
    """
    import onnx

    inferred = _infer(model, "the converted FP16 ONNX")
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input]}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    producer = {o: n for n in model.graph.node for o in n.output}
    outputs = {o.name for o in model.graph.output}

    def cast_to(node: Any) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    rename: dict[str, str] = {}
    for node in model.graph.node:
        src = producer.get(node.input[0]) if node.input else None
        if (cast_to(node) == onnx.TensorProto.FLOAT and src is not None and cast_to(src) == onnx.TensorProto.FLOAT16
                and types.get(src.input[0]) == onnx.TensorProto.FLOAT and node.output[0] not in outputs):
            rename[node.output[0]] = src.input[0]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    _drop_dead_nodes(model)
    return len(rename)


def _drop_dead_nodes(model: Any) -> None:
    """Remove nodes none of whose outputs is read (the bypassed Casts), repeatedly."""
    while True:
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        dead = [n for n in model.graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for node in dead:
            model.graph.node.remove(node)


def _infer(model: Any, what: str = "the FP32 ONNX") -> Any:
    """Shape/type inference in memory, or through a temp file for models past the 2 GB protobuf limit."""
    import tempfile

    import onnx

    from isodeploy.core.onnx_io import PROTOBUF_LIMIT, weights_bytes

    try:
        if weights_bytes(model) < PROTOBUF_LIMIT // 2:
            return onnx.shape_inference.infer_shapes(model, check_type=True, data_prop=True)
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
            onnx.save_model(model, str(src), save_as_external_data=True, location="in.onnx.data")
            onnx.shape_inference.infer_shapes_path(str(src), str(dst), check_type=True, data_prop=True)
            return onnx.load(str(dst))
    except onnx.shape_inference.InferenceError as exc:
        raise IsodeployError(f"shape inference failed on {what} ({str(exc).splitlines()[0][:200]}); re-export it with 'isodeploy export'") from exc


def _check_loads(model: Any) -> None:
    """Refuse to write an FP16 model onnxruntime cannot load (a converter bug would otherwise surface later)."""
    import onnxruntime as ort

    from isodeploy.core.onnx_io import PROTOBUF_LIMIT, weights_bytes

    if weights_bytes(model) >= PROTOBUF_LIMIT // 2:
        return  # checked by onnx.checker on the written file instead
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise IsodeployError(f"the FP16 model does not load in onnxruntime: {str(exc).splitlines()[0][:240]}") from exc


def convert_fp16(
    in_path: Path,
    out_path: Path,
    *,
    calib_inputs: list[np.ndarray] | None = None,
    block_ops: tuple[str, ...] = DEFAULT_BLOCK_OPS,
    safe_range: float = SAFE_RANGE,
    keep_io_types: bool = True,
) -> Fp16Report:
    """Write a mixed-precision copy of the FP32 ONNX ``in_path`` to ``out_path``.

    ``calib_inputs``: batches for the range check; ``None`` uses 4 random-normal samples, ``[]`` skips
    the check (only ``block_ops`` then stay FP32). ``keep_io_types`` keeps FP32 inputs and outputs.
    """
    import onnx
    from onnxconverter_common.float16 import convert_float_to_float16

    from isodeploy.export.fp16_calib import activation_ranges, default_calib_inputs
    from isodeploy.core.onnx_io import load_onnx, read_metadata, save_onnx_atomic, set_metadata

    start = time.perf_counter()
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.resolve() == out_path.resolve():
        raise IsodeployError(f"the FP16 output '{out_path}' would overwrite its FP32 source; pass another -o path")
    model = load_onnx(in_path)
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer) or read_metadata(model).get("precision") == "fp16":
        raise IsodeployError(f"'{in_path}' is already FP16; convert the FP32 ONNX instead")
    _name_nodes(model)
    model = _infer(model)
    if calib_inputs is None:
        calib_inputs = default_calib_inputs(model)
    ranges = activation_ranges(model, calib_inputs) if calib_inputs else {}
    blocked = _blocked_nodes(model, ranges, tuple(block_ops), safe_range)
    _split_shared_initializers(model, blocked)
    nodes_before = len(model.graph.node)
    casts_before = sum(1 for n in model.graph.node if n.op_type == "Cast")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter warns for every clamped tiny weight
        # the converter edits ``model`` in place and returns it
        converted = convert_float_to_float16(model, keep_io_types=keep_io_types, disable_shape_infer=True,
                                             op_block_list=[], node_block_list=list(blocked), max_finite_val=FP16_MAX)
    del converted.graph.value_info[:]  # stale after the rewrite; the strict inference on save re-derives them
    _bypass_fp16_round_trips(converted)
    meta = {k: v for k, v in read_metadata(converted).items()}
    meta.update(precision="fp16", fp32_nodes=str(len(blocked)), fp16_safe_range=f"{safe_range:g}")
    set_metadata(converted, meta)
    _check_loads(converted)
    save_onnx_atomic(converted, out_path)
    casts_added = sum(1 for n in converted.graph.node if n.op_type == "Cast") - casts_before
    fp32_nodes = [{"name": name, "op": op, "reason": reason} for name, (op, reason) in blocked.items()]
    data = out_path.with_name(out_path.name + ".data")
    return Fp16Report(
        path=str(out_path),
        source=str(in_path),
        fp32_nodes=fp32_nodes,
        fp16_nodes=nodes_before - len(blocked),
        total_nodes=nodes_before,
        casts_added=casts_added,
        calib_batches=len(calib_inputs),
        safe_range=safe_range,
        max_activation=max(ranges.values(), default=0.0),
        block_ops=list(block_ops),
        keep_io_types=keep_io_types,
        seconds=round(time.perf_counter() - start, 3),
        size_bytes=out_path.stat().st_size + (data.stat().st_size if data.is_file() else 0),
        reasons=dict(Counter(r.split(" '")[0] if r.startswith(("activation", "weight")) else r for _, r in blocked.values())),
    )
