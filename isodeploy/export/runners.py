"""Backends that run one model on numpy feeds: onnxruntime, PyTorch, and (lazily) TensorRT.

``verify`` compares any two runners and ``bench`` times them; neither needs to know what is inside.
Like Polygraphy's runners: a name, input/output names, and ``run(feeds) -> outputs``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from isodeploy.errors import IsodeployError

ONNX_SUFFIXES = (".onnx",)
PLAN_SUFFIXES = (".plan", ".engine")
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


@runtime_checkable
class Runner(Protocol):
    """Anything that maps named numpy inputs to a list of numpy outputs."""

    name: str
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class OrtRunner:
    """onnxruntime on the CPU (or the providers given); feeds are cast to the model's input types."""

    def __init__(self, path: Path | str, threads: int | None = None, *, providers: list[str] | None = None,
                 optimize: bool = True) -> None:
        import onnxruntime as ort

        from isodeploy.export.onnx_io import load_onnx, read_metadata, tensor_shape

        self.path = Path(path)
        model = load_onnx(self.path, load_weights=False)  # one clear line for missing/foreign/truncated files
        self.metadata = read_metadata(model)
        self.precision = self.metadata.get("precision") or _precision_of(model)
        self.name = f"onnxruntime:{self.path.name}"
        ort.set_default_logger_severity(3)  # optimizer notes ("cannot remove node") are not the user's concern
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0][:240] if str(exc).strip() else type(exc).__name__
            raise IsodeployError(f"onnxruntime cannot load '{self.path}': {first}") from exc
        self.threads = threads
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._types = {i.name: _ORT_TYPES.get(i.type, np.float32) for i in inputs}
        declared = {v.name: v for v in model.graph.input}
        self.input_shapes = {i.name: tensor_shape(declared[i.name]) if i.name in declared else list(i.shape) for i in inputs}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        cast = {k: np.ascontiguousarray(v, dtype=self._types.get(k, v.dtype)) for k, v in feeds.items()}
        try:
            outs = self.session.run(self.output_names, cast)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:240] if str(exc).strip() else type(exc).__name__
            shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
            raise IsodeployError(f"onnxruntime failed on '{self.path.name}' with inputs {shapes}: {first}") from exc
        return [np.asarray(o) for o in outs]


class ReferenceRunner:
    """onnx's reference evaluator (numpy): every tensor is stored in its declared ONNX type.

    onnxruntime's CPU provider runs FP16 ops that lack CPU kernels in FP32 (it inserts Casts only around
    whole FP16 regions), so FP16 overflow inside a region never shows there. This runner keeps each
    intermediate tensor in its ONNX type, as a strongly typed TensorRT engine does. Slow: small models only.
    """

    def __init__(self, path: Path | str) -> None:
        from onnx.reference import ReferenceEvaluator

        from isodeploy.export.onnx_io import load_onnx, read_metadata, tensor_shape

        self.path = Path(path)
        model = load_onnx(self.path)
        self.metadata = read_metadata(model)
        self.precision = self.metadata.get("precision") or _precision_of(model)
        self.name = f"onnx-reference:{self.path.name}"
        initializers = {t.name for t in model.graph.initializer}
        inputs = [v for v in model.graph.input if v.name not in initializers]
        self.input_names = [v.name for v in inputs]
        self.output_names = [o.name for o in model.graph.output]
        self.input_shapes = {v.name: tensor_shape(v) for v in inputs}
        self._types = {v.name: onnx_np_type(v.type.tensor_type.elem_type) for v in inputs}
        self._evaluator = ReferenceEvaluator(model)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import warnings

        cast = {k: np.ascontiguousarray(v, dtype=self._types.get(k, v.dtype)) for k, v in feeds.items()}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # overflow warnings are the point of this runner, not news
            return [np.asarray(o) for o in self._evaluator.run(self.output_names, cast)]


def onnx_np_type(elem_type: int) -> Any:
    """numpy dtype of an ONNX tensor element type."""
    from onnx.helper import tensor_dtype_to_np_dtype

    return tensor_dtype_to_np_dtype(elem_type)


class TorchRunner:
    """A PyTorch module in eval mode under ``no_grad``; the reference side of ``verify``."""

    def __init__(self, module: Any, device: str = "cpu", *, name: str = "torch",
                 input_names: list[str] | None = None, output_names: list[str] | None = None) -> None:
        import torch

        self.module = module.eval().to(device)
        self.device = torch.device(device)
        self.name = name
        self.precision = "fp32"
        self.input_names = list(input_names or ["input"])
        self.output_names = list(output_names or ["logits"])

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[n], dtype=np.float32)).to(self.device) for n in self.input_names]
        with torch.no_grad(), _strict_fp32(self.device):
            out = self.module(*args)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return [o.detach().float().cpu().numpy() for o in outs]


@contextlib.contextmanager
def _strict_fp32(device: Any):
    """A reference must be true FP32: on CUDA, switch TF32 off (cuDNN convolutions use it by default)."""
    import torch

    if getattr(device, "type", "cpu") != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    old = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = old


def _precision_of(model: Any) -> str:
    """``fp16`` when any weight is half precision, else ``fp32`` (for ONNX files not written by isodeploy)."""
    import onnx

    return "fp16" if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer) else "fp32"


def runner_precision(runner: Any) -> str:
    """What precision an artifact computes in, which decides the default ``verify`` gates."""
    precision = getattr(runner, "precision", None) or getattr(getattr(runner, "meta", None), "precision", None)
    if precision:
        return "fp32" if str(precision).lower() == "fp32" else "fp16"
    return "fp16" if str(getattr(runner, "path", "")).endswith(PLAN_SUFFIXES) else "fp32"


def open_runner(artifact_path: Path | str, threads: int | None = None, *, runtime: str = "ort") -> Runner:
    """``.onnx`` → :class:`OrtRunner` (or :class:`ReferenceRunner` with ``runtime="reference"``);
    ``.plan``/``.engine`` → the TensorRT runner (imported only then)."""
    path = Path(artifact_path)
    suffix = path.suffix.lower()
    if runtime not in ("ort", "reference"):
        raise IsodeployError(f"unknown ONNX runtime '{runtime}': choose ort or reference")
    if suffix in ONNX_SUFFIXES:
        return ReferenceRunner(path) if runtime == "reference" else OrtRunner(path, threads=threads)
    if suffix in PLAN_SUFFIXES:
        if not path.is_file():
            raise IsodeployError(f"engine file '{path}' does not exist")
        try:
            from isodeploy.export.tensorrt_runner import TrtRunner
        except ImportError as exc:
            raise IsodeployError(f"cannot run '{path}': the TensorRT runner is not available in this installation ({exc})") from exc
        return TrtRunner(path, threads=threads)
    if not path.exists():
        raise IsodeployError(f"artifact '{path}' does not exist")
    raise IsodeployError(f"unknown artifact type '{suffix or path.name}' for '{path}': expected a .onnx or a .plan file")
