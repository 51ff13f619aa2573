"""onnx's reference evaluator (numpy): every tensor is stored in its declared ONNX type.

onnxruntime's CPU provider runs FP16 ops that lack CPU kernels in FP32 (it inserts Casts only around
whole FP16 regions), so FP16 overflow inside a region never shows there. This runner keeps each
intermediate tensor in its ONNX type, as a strongly typed TensorRT engine does. Slow: small models only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from isodeploy.core.errors import IsodeployError
from isodeploy.runtime import onnx_info
from isodeploy.runtime.base import CPU_TIMING, TimedStep, image_input_shape, single_input
from isodeploy.runtime.dtypes import onnx_np_type


class ReferenceRunner:
    backend = "reference"
    device = "cpu"

    def __init__(self, path: Path | str, threads: int | None = None, *, device: str = "cpu") -> None:
        if device != "cpu":
            raise IsodeployError("the onnx reference evaluator runs on the CPU only: use --device cpu")
        from isodeploy.core.onnx_io import load_onnx, tensor_shape

        self.path = Path(path)
        self._model = load_onnx(self.path)
        self.metadata = onnx_info.metadata(self._model)
        self.precision = onnx_info.precision_of(self._model, self.metadata)
        self.name = f"onnx-reference:{self.path.name}"
        inputs = onnx_info.declared_inputs(self._model)
        self.input_names = [v.name for v in inputs]
        self.output_names = [o.name for o in self._model.graph.output]
        self.input_shapes = {v.name: tensor_shape(v) for v in inputs}
        self._types = {v.name: onnx_np_type(v.type.tensor_type.elem_type) for v in inputs}
        self._evaluator: Any = None
        self.activate()

    def activate(self) -> None:
        if self._evaluator is None:
            from onnx.reference import ReferenceEvaluator

            self._evaluator = ReferenceEvaluator(self._model)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import warnings

        cast = {k: np.ascontiguousarray(v, dtype=self._types.get(k, v.dtype)) for k, v in feeds.items()}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # overflow warnings are the point of this runner, not news
            return [np.asarray(o) for o in self._evaluator.run(self.output_names, cast)]

    def timed_step(self, batch: int, img_size: int | None = None) -> TimedStep:
        name = single_input(self)
        shape = image_input_shape(name, list(self.input_shapes[name]), batch, img_size)
        feeds = {name: np.random.default_rng(0).standard_normal(shape).astype(self._types[name])}
        return TimedStep(step=lambda: self.run(feeds), input_shape=shape, timing=CPU_TIMING, precision=self.precision)
