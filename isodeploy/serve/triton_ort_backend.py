"""A Python-based Triton backend that serves ``onnxruntime_onnx`` models with onnxruntime (CPU).

Not imported by isodeploy: this file is copied to ``BACKEND_DIR/onnxruntime/model.py`` of a Triton that lacks
the C++ onnxruntime backend (the ``nvidia-pytriton`` wheel's server), where Triton runs it for every model whose
config says ``platform: "onnxruntime_onnx"``. A repository written by ``isodeploy triton-repo`` then serves
unmodified, so tests exercise Triton's real loader, scheduler and dynamic batcher on a CPU-only machine.
It runs inside Triton's Python stub, whose environment must provide numpy (< 2) and onnxruntime.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Batches the requests Triton hands over into one onnxruntime call and splits the result back."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        graph_inputs = {i.name: i for i in self.session.get_inputs()}
        missing = [n for n in self.inputs if n not in graph_inputs]
        if missing:
            raise pb_utils.TritonModelException(f"config inputs {missing} are not inputs of {filename}")

    def execute(self, requests):
        try:
            feeds = [{n: self._input(r, n) for n in self.inputs} for r in requests]
            if self.batching and len(requests) > 1:
                sizes = [next(iter(f.values())).shape[0] for f in feeds]
                merged = {n: np.concatenate([f[n] for f in feeds]) for n in self.inputs}
                results = self.session.run(self.outputs, merged)
                bounds = np.cumsum([0] + sizes)
                per_request = [[r[bounds[i]:bounds[i + 1]] for r in results] for i in range(len(requests))]
            else:
                per_request = [self.session.run(self.outputs, f) for f in feeds]
        except Exception as exc:  # the error goes back to each client instead of killing the stub
            error = pb_utils.TritonError(f"onnxruntime: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        return [pb_utils.InferenceResponse([pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in zip(self.outputs, out)])
                for out in per_request]

    def _input(self, request, name):
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            raise ValueError(f"request lacks input '{name}'")
        return tensor.as_numpy()
