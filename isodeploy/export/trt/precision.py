"""Which FP16 path a build takes, decided from the request, the ONNX and the TensorRT capabilities.

TensorRT 11 has no precision builder flags: a strongly typed network takes its precision from the ONNX
types, so FP16 means building from the mixed-precision ONNX (``export --precision fp16``), converted on
the fly when an FP32 ONNX is given. The weakly typed ``BuilderFlag.FP16`` path is kept for TensorRT 10
only, only on request. Pure logic, so every branch is tested without TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass

from isodeploy.core.errors import IsodeployError
from isodeploy.runtime.trt.env import TrtCaps

PRECISIONS = ("fp16", "fp32", "fp16-legacy")


@dataclass(frozen=True)
class BuildPlan:
    """How to set up the network and builder config for one precision request."""

    precision: str
    strongly_typed: bool  # create the network with NetworkDefinitionCreationFlag.STRONGLY_TYPED
    convert_fp16: bool  # run isodeploy.export.fp16.convert_fp16 on the ONNX first
    builder_fp16_flag: bool  # config.set_flag(BuilderFlag.FP16): weak typing, TensorRT 10 only
    disable_tf32: bool  # fp32 means fp32: clear BuilderFlag.TF32 so matmuls do not drop to 10-bit mantissas

    @property
    def fp16_source(self) -> str | None:
        if self.precision == "fp32":
            return None
        if self.builder_fp16_flag:
            return "builder-flag"
        return "converted" if self.convert_fp16 else "onnx"


def plan_precision(precision: str, onnx_low_precision: bool, caps: TrtCaps | None, onnx_name: str = "the ONNX") -> BuildPlan:
    """Decide the build path, or raise one line saying what to change.

    ``caps=None`` checks what can be checked before TensorRT is imported (legacy FP16 is then assumed possible).
    """
    if precision not in PRECISIONS:
        raise IsodeployError(f"unknown --precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16":
        return BuildPlan(precision, strongly_typed=True, convert_fp16=not onnx_low_precision,
                         builder_fp16_flag=False, disable_tf32=False)
    if precision == "fp32":
        if onnx_low_precision:
            raise IsodeployError(
                f"{onnx_name} is a mixed-precision (FP16) ONNX, so a strongly typed build would run FP16: "
                f"for --precision fp32 pass the FP32 ONNX ('isodeploy export' without --precision fp16)"
            )
        return BuildPlan(precision, strongly_typed=True, convert_fp16=False, builder_fp16_flag=False,
                         disable_tf32=caps is None or caps.tf32_builder_flag)
    if caps is not None and not caps.fp16_builder_flag:
        raise IsodeployError(
            f"--precision fp16-legacy needs BuilderFlag.FP16, which TensorRT {caps.version} no longer has: "
            f"use --precision fp16 (strongly typed, from the mixed-precision ONNX)"
        )
    return BuildPlan(precision, strongly_typed=False, convert_fp16=False, builder_fp16_flag=True, disable_tf32=False)
