"""The one table of element types: ONNX/onnxruntime type strings, ONNX enums, TensorRT names → numpy/torch."""

from __future__ import annotations

from typing import Any

import numpy as np

#: onnxruntime ``NodeArg.type`` → numpy
ORT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
FLOAT_ORT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")

#: TensorRT ``DataType`` member name → isodeploy dtype name (also the torch attribute name where one exists)
TRT_DTYPES: dict[str, str] = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
    "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "float8_e4m3", "INT4": "int4", "FP4": "float4",
}
TORCH_NAMES = ("float32", "float16", "bfloat16", "int8", "int32", "int64", "bool", "uint8")

#: isodeploy precision → torch dtype name
PRECISION_TORCH = {"fp32": "float32", "fp16": "float16"}


def onnx_np_type(elem_type: int) -> Any:
    """numpy dtype of an ONNX tensor element type (``TensorProto.FLOAT`` → float32)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    return tensor_dtype_to_np_dtype(elem_type)


def ort_np_type(type_string: str, default: Any = np.float32) -> Any:
    return ORT_TYPES.get(type_string, default)


def torch_dtype(name: str) -> Any:
    """A torch dtype from an isodeploy dtype name (``float16``) or precision (``fp16``)."""
    import torch

    name = PRECISION_TORCH.get(name, name)
    if name not in TORCH_NAMES:
        from isodeploy.core.errors import IsodeployError

        raise IsodeployError(f"type {name} has no torch equivalent; isodeploy runs float/int models only")
    return getattr(torch, name)


def trt_dtype_name(dtype: Any) -> str:
    """isodeploy dtype name of a TensorRT ``DataType`` (works for TensorRT 10 and 11 enum reprs)."""
    name = getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1])
    return TRT_DTYPES.get(name, name.lower())
