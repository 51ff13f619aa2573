"""Compatibility home of the TensorRT runner, which lives in :mod:`isodeploy.runtime.trt`."""

from isodeploy.runtime.trt import TrtRunner, shared_logger

__all__ = ["TrtRunner", "shared_logger"]
