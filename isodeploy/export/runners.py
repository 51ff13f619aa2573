"""Compatibility home of the runners: they live in :mod:`isodeploy.runtime` (one layer for verify and bench)."""

from __future__ import annotations

from isodeploy.runtime.base import Runner
from isodeploy.runtime.dtypes import onnx_np_type
from isodeploy.runtime.open import ONNX_SUFFIXES, PLAN_SUFFIXES, open_runner, runner_precision
from isodeploy.runtime.ort import OrtRunner
from isodeploy.runtime.reference import ReferenceRunner
from isodeploy.runtime.torch_runner import TorchRunner, strict_fp32

__all__ = ["Runner", "OrtRunner", "ReferenceRunner", "TorchRunner", "open_runner", "runner_precision", "onnx_np_type",
           "strict_fp32", "ONNX_SUFFIXES", "PLAN_SUFFIXES"]
