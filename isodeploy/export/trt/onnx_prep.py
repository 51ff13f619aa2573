"""What the TensorRT builder and the Triton writer need to know about an ONNX file, read without TensorRT.

Input/output names, element types and shapes, whether the graph is already mixed precision, and the
optimization-profile shapes that follow from the batch flags. Pure Python on ``onnx``, so it is tested
on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from isodeploy.core.errors import IsodeployError
from isodeploy.runtime.trt.meta import ProfileShape  # noqa: F401 - the builder and tests import it from here

#: ONNX TensorProto element type → the dtype names used across isodeploy metadata
ONNX_DTYPES: dict[int, str] = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
}
_LOW_PRECISION = {10, 16}  # FLOAT16, BFLOAT16


@dataclass
class OnnxTensor:
    """One graph input or output. ``shape`` uses -1 for a dynamic dim; ``dim_names`` keeps symbolic names."""

    name: str
    dtype: str
    shape: list[int]
    dim_names: list[str | None] = field(default_factory=list)

    @property
    def batch_dynamic(self) -> bool:
        return bool(self.shape) and self.shape[0] == -1


@dataclass
class OnnxIO:
    """The interface of an ONNX model plus the facts the build decisions depend on."""

    path: str
    inputs: list[OnnxTensor]
    outputs: list[OnnxTensor]
    low_precision: bool  # FP16/BF16 weights, casts or activations: a mixed-precision export
    external_data: list[str]  # relative locations of external weight files


def load_onnx_proto(path: Path):
    """Load the graph (not external weights) or raise one clear line for a missing or broken file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise IsodeployError(f"ONNX file '{path}' does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError, truncated files, random bytes
        raise IsodeployError(
            f"'{path}' is not a readable ONNX file ({type(exc).__name__}); re-export it with 'isodeploy export'"
        ) from exc
    if not model.graph.node and not model.graph.output:
        raise IsodeployError(f"'{path}' is not a readable ONNX file (empty graph); re-export it with 'isodeploy export'")
    from isodeploy.core.onnx_io import check_external_data

    check_external_data(model, path)  # TensorRT's parser and Triton read the side files: only ones beside the model
    return model


def _tensor(value_info) -> OnnxTensor:
    ttype = value_info.type.tensor_type
    shape, names = [], []
    for dim in ttype.shape.dim:
        has_value = dim.HasField("dim_value") and dim.dim_value > 0
        shape.append(int(dim.dim_value) if has_value else -1)
        names.append(dim.dim_param or None)
    return OnnxTensor(value_info.name, ONNX_DTYPES.get(ttype.elem_type, f"onnx_type_{ttype.elem_type}"), shape, names)


def _is_low_precision(model) -> bool:
    graph = model.graph
    if any(t.data_type in _LOW_PRECISION for t in graph.initializer):
        return True
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        if vi.type.tensor_type.elem_type in _LOW_PRECISION:
            return True
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i in _LOW_PRECISION:
                return True
            if attr.name == "value" and attr.t.data_type in _LOW_PRECISION:
                return True
    return False


def _external_locations(model) -> list[str]:
    """Side files of every stored tensor: initializers and Constant-node tensors alike."""
    from isodeploy.core.onnx_io import external_tensors

    locations: set[str] = set()
    for _, t in external_tensors(model):
        for entry in t.external_data:
            if entry.key == "location":
                locations.add(entry.value)
    return sorted(locations)


def read_onnx_io(path: Path) -> OnnxIO:
    """Inputs (initializers excluded), outputs, precision and external files of an ONNX model."""
    model = load_onnx_proto(path)
    init_names = {t.name for t in model.graph.initializer}
    inputs = [_tensor(vi) for vi in model.graph.input if vi.name not in init_names]
    outputs = [_tensor(vi) for vi in model.graph.output]
    if not inputs or not outputs:
        raise IsodeployError(f"'{path}' has no graph inputs or outputs; re-export it with 'isodeploy export'")
    return OnnxIO(str(path), inputs, outputs, _is_low_precision(model), _external_locations(model))


def check_batch_flags(min_batch: int, opt_batch: int, max_batch: int) -> None:
    """The profile must satisfy 1 ≤ min ≤ opt ≤ max; say which flag is out of order."""
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise IsodeployError(
            f"batch flags out of order: need 1 <= --min-batch <= --opt-batch <= --max-batch, "
            f"got {min_batch}, {opt_batch}, {max_batch}"
        )


def profile_shapes(io: OnnxIO, min_batch: int, opt_batch: int, max_batch: int) -> list[ProfileShape]:
    """One profile over the batch dim of every input; every other dim must be fixed in the ONNX.

    A fixed batch in the ONNX (exported without a dynamic batch) only allows min = opt = max = that batch.
    """
    check_batch_flags(min_batch, opt_batch, max_batch)
    shapes = []
    for t in io.inputs:
        if not t.shape:
            raise IsodeployError(f"input '{t.name}' of {io.path} is a scalar; isodeploy needs a batch dimension")
        for axis, size in enumerate(t.shape[1:], start=1):
            if size == -1:
                label = t.dim_names[axis] if axis < len(t.dim_names) and t.dim_names[axis] else "?"
                raise IsodeployError(
                    f"input '{t.name}' of {io.path} has a dynamic dim {axis} ('{label}'); profiles cover the batch "
                    f"only: re-export with a fixed image size (--img-size)"
                )
        rest = list(t.shape[1:])
        if t.shape[0] != -1 and not min_batch == opt_batch == max_batch == t.shape[0]:
            b = t.shape[0]
            raise IsodeployError(
                f"input '{t.name}' of {io.path} has a fixed batch of {b}: re-export with a dynamic batch, "
                f"or pass --min-batch {b} --opt-batch {b} --max-batch {b}"
            )
        shapes.append(ProfileShape(t.name, [min_batch, *rest], [opt_batch, *rest], [max_batch, *rest]))
    return shapes
