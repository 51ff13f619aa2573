"""Measure the largest |activation| of every float tensor of an FP32 ONNX on calibration inputs.

A tensor whose magnitude is near FP16's limit (65504) overflows to inf once it is stored in half
precision; the FP16 converter keeps the nodes that produce or read such tensors in FP32.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from isodeploy.core.errors import IsodeployError


def _float_values(model: Any) -> list[str]:
    """Names of every float32 tensor a node produces (needs shape inference to have typed them)."""
    import onnx

    typed = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.output]}
    produced = [o for n in model.graph.node for o in n.output if o]
    return [name for name in produced if typed.get(name) == onnx.TensorProto.FLOAT]


def _session(model: Any) -> Any:
    """An unoptimised onnxruntime session (optimisations would fuse away the tensors we want to see)."""
    import onnx
    import onnxruntime as ort

    from isodeploy.core.onnx_io import PROTOBUF_LIMIT, weights_bytes

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    if weights_bytes(model) < PROTOBUF_LIMIT // 2:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calib.onnx"
        onnx.save_model(model, str(path), save_as_external_data=True, location="calib.onnx.data")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _split(batch: np.ndarray, first_dim: Any) -> list[np.ndarray]:
    """One sample at a time when the batch dim is dynamic: every intermediate tensor is held at once."""
    if isinstance(first_dim, int) and first_dim > 0:
        return [batch]
    return [batch[i:i + 1] for i in range(len(batch))]


def activation_ranges(model: Any, inputs: list[np.ndarray]) -> dict[str, float]:
    """max |x| per float tensor over all ``inputs`` (batches for the model's single input); inf for NaN/inf."""
    import onnx

    from isodeploy.core.onnx_io import tensor_shape

    if len(model.graph.input) != 1:
        raise IsodeployError("FP16 range calibration supports single-input models; pass calib_inputs=[] to skip it")
    names = _float_values(model)
    probe = copy.deepcopy(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    try:
        session = _session(probe)
    except Exception as exc:  # onnxruntime's own exception types
        raise IsodeployError(f"onnxruntime cannot run the FP32 model for FP16 calibration: {str(exc).splitlines()[0][:200]}") from exc
    input_name = model.graph.input[0].name
    first_dim = tensor_shape(model.graph.input[0])[0]
    out_names = [o.name for o in session.get_outputs()]
    ranges: dict[str, float] = {}
    for batch in inputs:
        for part in _split(np.asarray(batch, dtype=np.float32), first_dim):
            for name, value in zip(out_names, session.run(out_names, {input_name: part})):
                if value.size == 0 or not np.issubdtype(value.dtype, np.floating):
                    continue
                peak = float(np.abs(value).max()) if np.isfinite(value).all() else float("inf")
                ranges[name] = max(ranges.get(name, 0.0), peak)
    return ranges


def default_calib_inputs(model: Any, count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Standard-normal samples shaped like the model's input (a dynamic batch becomes ``count``)."""
    from isodeploy.core.onnx_io import tensor_shape

    shape = tensor_shape(model.graph.input[0])
    if any(not isinstance(d, int) or d <= 0 for d in shape[1:]):
        raise IsodeployError(f"input '{model.graph.input[0].name}' has dynamic dims {shape[1:]}; pass calibration inputs explicitly")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else count
    return [np.random.default_rng(seed).standard_normal((batch, *shape[1:])).astype(np.float32)]
