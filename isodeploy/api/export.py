"""What ``isodeploy export`` decides before and after :func:`isodeploy.api.deploy.export_onnx`: where the
ONNX goes by default, which options only an FP16 export uses, and the ``--json`` payload.

``describe`` (the one-line summary of an :class:`ExportReport`) is re-exported from
:mod:`isodeploy.export.onnx`, as is the :class:`ExportReport` type itself.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from isodeploy.core.errors import ParameterError
from isodeploy.export.onnx import ExportReport, describe

__all__ = ["ExportReport", "PRECISIONS", "check_export_options", "default_onnx_path", "describe", "export_report_dict"]

#: what ``precision=`` / ``--precision`` takes
PRECISIONS = ("fp32", "fp16")


def default_onnx_path(model: str | Path, precision: str = "fp32") -> Path:
    """Where an export of ``model`` goes when no path is given: ``DIR/model.onnx`` for an isodeploy
    folder, ``./<model>.onnx`` otherwise (``.fp16.onnx`` for FP16), so the two precisions never collide."""
    from isodeploy.loading import model_folder

    model = str(model)
    given = model_folder(model)
    name = "model" if given is not None else Path(model).name.replace(":", "_")
    folder = given if given is not None else Path(".")
    return folder / (f"{name}.fp16.onnx" if precision == "fp16" else f"{name}.onnx")


def check_export_options(precision: str = "fp32", *, calib_data: str | Path | None = None, calib_samples: int = 8,
                         safe_range: float | None = None) -> list[str]:
    """Refuse a precision other than fp32/fp16 before any model is built; return the FP16-only options
    (``calib_data``, ``safe_range``, ``calib_samples`` other than its default 8) that an FP32 export
    ignores, so the caller can say so (the CLI warns)."""
    if precision not in PRECISIONS:
        raise ParameterError("precision", f"must be fp32 or fp16, not '{precision}'")
    if precision == "fp16":
        return []
    given = (("calib_data", calib_data is not None), ("safe_range", safe_range is not None), ("calib_samples", calib_samples != 8))
    return [name for name, is_given in given if is_given]


def export_report_dict(report: ExportReport) -> dict[str, Any]:
    """The ``--json`` payload of an export: ``{"export": ..., "fp16": ... or None}``, non-finite numbers as null."""
    from isodeploy.export.verify_stats import finite_or_none

    fp16 = getattr(report, "fp16", None)
    return finite_or_none({"export": asdict(report), "fp16": asdict(fp16) if fp16 else None})
