"""Building TensorRT engines: ONNX preparation, the FP16 precision plan and the builder (TensorRT 10
and 11, capabilities detected with ``hasattr``). Running them is :mod:`isodeploy.runtime.trt`."""
