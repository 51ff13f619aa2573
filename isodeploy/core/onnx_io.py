"""Read, check and write ONNX files with one clear error line for every way a file can be bad.

Every stage that takes an ONNX path (verify, fp16, the runners) goes through :func:`load_onnx`, so a
missing, foreign or truncated file reads the same everywhere. Writing goes through
:func:`save_onnx_atomic`: the model (and its ``.data`` side file when it is over the 2 GB protobuf
limit) lands in a temp folder beside the target, is checked and shape-inferred there, and only then
moved into place, so a reader never sees half an artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from isodeploy.core.errors import IsodeployError

#: protobuf cannot serialise a message over 2 GiB; bigger models keep their weights in a side file
PROTOBUF_LIMIT = 2**31 - 1
#: prefix of every metadata key isodeploy writes into an ONNX file
META_PREFIX = "isodeploy."


def external_data_path(onnx_path: Path) -> Path:
    """Where the weights of a large model live: ``model.onnx.data`` beside ``model.onnx``."""
    return onnx_path.with_name(onnx_path.name + ".data")


def graph_tensors(model: Any) -> Iterator[tuple[str, Any]]:
    """Every tensor an ONNX model stores: initializers *and* tensors held in node attributes (Constant
    nodes' ``value``, any op's tensor attributes), in every subgraph (If/Loop/Scan bodies). Each comes
    with a label for messages. Whatever is checked about initializers is checked about all of these:
    external data can live in any of them."""
    from onnx import AttributeProto

    def walk(graph: Any) -> Iterator[tuple[str, Any]]:
        for tensor in graph.initializer:
            yield f"initializer '{tensor.name}'", tensor
        for node in graph.node:
            for attr in node.attribute:
                label = f"{node.op_type} node '{node.name or (node.output[0] if node.output else '?')}' attribute '{attr.name}'"
                if attr.type == AttributeProto.TENSOR:
                    yield label, attr.t
                elif attr.type == AttributeProto.TENSORS:
                    yield from ((label, t) for t in attr.tensors)
                elif attr.type == AttributeProto.SPARSE_TENSOR:
                    yield from ((label, t) for t in (attr.sparse_tensor.values, attr.sparse_tensor.indices))
                elif attr.type == AttributeProto.GRAPH:
                    yield from walk(attr.g)
                elif attr.type == AttributeProto.GRAPHS:
                    for sub in attr.graphs:
                        yield from walk(sub)

    yield from walk(model.graph)


def external_tensors(model: Any) -> list[tuple[str, Any]]:
    """The (label, tensor) pairs of :func:`graph_tensors` whose data lives in a side file."""
    from onnx import TensorProto

    return [(label, t) for label, t in graph_tensors(model) if t.data_location == TensorProto.EXTERNAL]


def load_onnx(path: Path | str, *, load_weights: bool = True) -> Any:
    """Parse an ONNX file, or raise one line saying whether it is missing, not ONNX, or truncated."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.exists():
        raise IsodeployError(f"ONNX file '{path}' does not exist")
    if path.is_dir():
        raise IsodeployError(f"'{path}' is a folder, not an ONNX file")
    size = path.stat().st_size
    if size == 0:
        raise IsodeployError(f"ONNX file '{path}' is empty; re-export it with 'isodeploy export'")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as exc:
        raise IsodeployError(
            f"'{path}' is not a valid ONNX file (it may be truncated or another format: {type(exc).__name__}); "
            "re-export it with 'isodeploy export'"
        ) from exc
    if not model.graph.node or not model.graph.output or not model.opset_import:
        raise IsodeployError(
            f"'{path}' is not a complete ONNX model (no graph, outputs or opset: truncated?); re-export it with 'isodeploy export'"
        )
    if external_tensors(model):
        # checked even without loading: onnxruntime, TensorRT and Triton read the side files themselves
        check_external_data(model, path)
        if load_weights:
            _load_external(model, path)
    return model


def _load_external(model: Any, path: Path) -> None:
    """Pull side-file weights into memory, naming the missing side file when it is absent."""
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(model, str(path.parent))
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise IsodeployError(
            f"'{path}' keeps its weights in a side file that could not be read ({exc}); "
            f"keep '{external_data_path(path).name}' next to it"
        ) from exc


def weights_bytes(model: Any) -> int:
    """Bytes of initializer data (a proxy for the serialised size that works beyond 2 GB)."""
    from onnx.external_data_helper import uses_external_data

    total = 0
    for _, t in graph_tensors(model):
        if uses_external_data(t):
            total += next((int(e.value) for e in t.external_data if e.key == "length"), 0)
        else:
            total += len(t.raw_data) or 4 * max(len(t.float_data), len(t.int32_data)) or 8 * len(t.int64_data)
    return total


def read_metadata(model: Any) -> dict[str, str]:
    """The ``isodeploy.*`` metadata props of a model, keys without the prefix."""
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def set_metadata(model: Any, values: dict[str, Any]) -> None:
    """Replace the ``isodeploy.*`` metadata props; non-string values are stored as JSON."""
    keep = [p for p in model.metadata_props if not p.key.startswith(META_PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in values.items():
        if value is None:
            continue
        prop = model.metadata_props.add()
        prop.key = META_PREFIX + key
        prop.value = value if isinstance(value, str) else json.dumps(value)


def save_onnx_atomic(model: Any, out_path: Path, *, external_threshold: int = PROTOBUF_LIMIT, infer: bool = True) -> bool:
    """Check, shape-infer and write ``model`` to ``out_path``; returns whether weights went to a side file.

    ``external_threshold`` (bytes of weights) decides the side file; tests lower it to exercise the path.
    Checks run on the file (``check_model(path)``), which works past 2 GB where in-memory checks cannot.
    """
    import onnx

    from isodeploy.core.safe_write import check_target, make_temp_dir, remove_quietly, replace_into

    out_path = Path(out_path)
    check_target(out_path)  # never onto a link, a FIFO or a device
    check_target(external_data_path(out_path))
    external = weights_bytes(model) > external_threshold
    tmp_dir = make_temp_dir(out_path.parent, out_path.name)
    try:
        tmp_model = tmp_dir / out_path.name
        data_name = external_data_path(out_path).name
        if external:
            onnx.save_model(model, str(tmp_model), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)
        else:
            onnx.save_model(model, str(tmp_model))
        check_onnx_file(tmp_model, infer=infer)
        if external:
            replace_into(tmp_dir / data_name, external_data_path(out_path))
        replace_into(tmp_model, out_path)
    finally:
        remove_quietly(tmp_dir)
    return external


def check_onnx_file(path: Path, *, infer: bool = True) -> None:
    """``onnx.checker`` plus strict shape inference on a written file; failures are bugs worth one line."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
        if infer:
            onnx.shape_inference.infer_shapes_path(str(path), str(path), check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise IsodeployError(f"the ONNX written for '{path.name}' fails the ONNX checker: {first}") from exc


def tensor_shape(value_info: Any) -> list[int | str]:
    """A graph input/output shape: ints for fixed dims, the symbol (e.g. ``batch``) for dynamic ones."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def check_external_data(model: Any, onnx_path: Path) -> None:
    """Every external-data location of an ONNX model must be a plain file next to (or under) the
    model's folder: not absolute, no '..', not a symbolic link. A crafted file must not make
    isodeploy read (or copy) any other file on the machine."""
    folder = Path(onnx_path).parent.resolve()
    for label, tensor in external_tensors(model):  # initializers and Constant-node tensors alike
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        rel = Path(location)
        target = folder / rel
        if (not location or rel.is_absolute() or ".." in rel.parts or target.is_symlink()
                or any(p.is_symlink() for p in target.parents if folder in p.parents)
                or (target.exists() and folder not in target.resolve().parents)):
            raise IsodeployError(f"'{onnx_path}': {label} keeps its data at '{location}', outside the "
                                 "model's folder or behind a symbolic link; isodeploy reads only side files next to the model")
