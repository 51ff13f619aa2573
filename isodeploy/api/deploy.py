"""The public deployment API (re-exported by ``isodeploy``): export to ONNX, verify numerics
(benchmarking: :mod:`isodeploy.api.benchmark`).

Each takes what a Python user holds — an ``nn.Module``, a saved folder, an ONNX path — and returns the
same report dataclasses the CLI commands print and write as JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from isodeploy.core.api_args import check_arg, check_path_arg
from isodeploy.core.errors import IsodeployError, ParameterError


def as_loaded(model: Any, example_inputs: Any = None, img_size: int | None = None, weights: str = "pretrained"):
    """A :class:`~isodeploy.zoo.LoadedModel` for a module, a folder or a model name."""
    from isodeploy.loading import load_model
    from isodeploy.zoo import LoadedModel
    from isodeploy.zoo.sources import source_of

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(str(model), weights=weights, img_size=img_size)
    if not isinstance(model, nn.Module):
        raise IsodeployError(f"model= must be an nn.Module, an isodeploy folder or a model name; got {type(model).__name__}")
    meta = dict(getattr(model, "_isodeploy_input", None) or {})
    if example_inputs is not None:
        from isodeploy.pruning.pruner import example_batch

        meta["input_size"] = list(example_batch(example_inputs).shape[1:])
    elif img_size is not None and meta.get("input_size"):
        meta["input_size"] = [meta["input_size"][0], img_size, img_size]
    if not meta.get("input_size"):
        raise IsodeployError("pass example_inputs= (e.g. torch.randn(2, 3, 224, 224)): this module does not know its input size")
    source = source_of(model)
    return LoadedModel(model=model.eval(), timm_name=source.label if source else type(model).__name__,
                       input_size=tuple(meta["input_size"]), weights="module",
                       create_kwargs=dict(source.kwargs) if source else {},
                       mean=tuple(meta.get("mean", (0.485, 0.456, 0.406))), std=tuple(meta.get("std", (0.229, 0.224, 0.225))),
                       source=source)


def export_onnx(model: Any, path: str | Path, *, example_inputs: Any = None, opset: int = 17, exporter: str | None = None,
                dynamic_batch: bool = True, precision: str = "fp32", img_size: int | None = None, weights: str = "pretrained",
                calib_data: str | Path | None = None, calib_samples: int = 8, safe_range: float | None = None):
    """Export ``model`` (an ``nn.Module``, an isodeploy folder or a model name) to ONNX at ``path``.

    Opset ≥ 17, dynamic batch, graph clean-up, checked, metadata recorded; written atomically.
    ``precision="fp16"`` writes the mixed-precision model TensorRT builds from (FP32 I/O; nodes whose
    activations on ``calib_samples`` inputs — images from ``calib_data`` or random — exceed
    ``safe_range`` stay FP32). Returns an :class:`~isodeploy.export.onnx.ExportReport`; for FP16 its
    ``fp16`` attribute holds the conversion report.
    """
    from isodeploy.export.onnx import check_opset
    from isodeploy.export.onnx import export_onnx as _export

    path = check_path_arg("path", path)
    check_arg("opset", opset, "positive int")
    check_arg("dynamic_batch", dynamic_batch, "bool")
    check_arg("img_size", img_size, "positive int", optional=True)
    if precision not in ("fp32", "fp16"):
        raise ParameterError("precision", f"must be fp32 or fp16; got {precision!r}")
    check_arg("calib_samples", calib_samples, "positive int")
    check_opset(opset)  # before minutes of model building
    loaded = as_loaded(model, example_inputs, img_size, weights=weights)
    path = Path(path)
    if precision == "fp32":
        report = _export(loaded, path, opset=opset, exporter=exporter, dynamic_batch=dynamic_batch)
        report.fp16 = None
        return report
    from isodeploy.export.fp16 import SAFE_RANGE, convert_fp16
    from isodeploy.core.inputs import image_samples, random_samples

    if calib_data is not None:
        samples = image_samples(Path(calib_data), calib_samples, loaded.input_size, loaded.mean, loaded.std)
    else:
        samples = random_samples(calib_samples, loaded.input_size)
    from isodeploy.core.cleanup import clean_target_temps
    from isodeploy.core.safe_write import check_target, make_temp_dir, remove_quietly

    check_target(path, f"output '{path}'")  # before the export: never onto a link, a FIFO or a device
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_target_temps(path)  # what a killed export of this very file left
    tmp = make_temp_dir(path.parent, f"{path.name}.fp32")  # PID-tagged: a killed run's is removed later
    try:
        report = _export(loaded, tmp / "fp32.onnx", opset=opset, exporter=exporter, dynamic_batch=dynamic_batch)
        batches = [samples[i:i + 1] for i in range(len(samples))]  # one sample per run: works for a static batch too
        fp16 = convert_fp16(tmp / "fp32.onnx", path, calib_inputs=batches, safe_range=safe_range or SAFE_RANGE)
    finally:
        remove_quietly(tmp)
    report.path, report.precision, report.size_bytes = str(path), "fp16", fp16.size_bytes
    report.fp16 = fp16
    return report


def verify(artifact: str | Path, reference: Any = None, *, batch_sizes: Sequence[int] = (1, 7), samples: int = 16,
           gates: Any = "auto", device: str = "cpu", runtime: str = "ort", example_inputs: Any = None):
    """Compare an ONNX file (or engine) with a reference on the same random inputs at each batch size.

    ``reference``: an ``nn.Module`` (run in PyTorch FP32), an isodeploy folder or model name, an FP32
    ``.onnx`` path, or None (the model named in the artifact's metadata). ``gates``: ``"auto"`` (fp16
    for FP16 artifacts), ``"fp32"``, ``"fp16"`` or a :class:`~isodeploy.export.verify.Gates`.
    Returns a :class:`~isodeploy.export.verify.VerifyReport` (``.passed``, ``.outputs``, ``.failures``).
    """
    from isodeploy.core.inputs import random_samples, to_batches
    from isodeploy.export.reference import Reference, check_same_input, open_reference
    from isodeploy.export.verify import Gates, verify as _verify
    from isodeploy.runtime.open import open_runner, runner_precision

    artifact = check_path_arg("artifact", artifact)
    check_arg("batch_sizes", batch_sizes, "list")
    for size in batch_sizes:
        check_arg("batch_sizes", size, "positive int")
    check_arg("samples", samples, "positive int")
    sizes = [int(b) for b in batch_sizes]
    if not sizes or min(sizes) < 1 or samples < 1:
        raise IsodeployError(f"batch_sizes= must be positive integers and samples= ≥ 1; got {list(batch_sizes)}, {samples}")
    candidate = open_runner(Path(artifact), runtime=runtime, device=device)
    if isinstance(reference, nn.Module):
        from isodeploy.export.reference import candidate_input_size
        from isodeploy.runtime.torch_runner import TorchRunner

        if example_inputs is None and not getattr(reference, "_isodeploy_input", None) and candidate_input_size(candidate):
            example_inputs = torch.zeros(2, *candidate_input_size(candidate))  # the artifact's own input shape
        loaded = as_loaded(reference, example_inputs)
        runner = TorchRunner(loaded.model, name=f"torch:{loaded.timm_name}", input_size=loaded.input_size,
                             output_names=list(candidate.output_names))
        ref = Reference(runner=runner, input_size=tuple(loaded.input_size), mean=loaded.mean, std=loaded.std, label=runner.name)
    else:
        ref = open_reference(None if reference is None else str(reference), candidate, weights=None, img_size=None, threads=None)
    input_size = check_same_input(candidate, Path(artifact), ref)
    if isinstance(gates, str):
        if gates not in ("auto", "fp32", "fp16"):
            raise IsodeployError(f"gates= must be 'auto', 'fp32', 'fp16' or a Gates object; got {gates!r}")
        gates = Gates.for_precision(runner_precision(candidate) if gates == "auto" else gates)
    report = _verify(candidate, ref.runner, to_batches(random_samples(samples, input_size), sizes), gates)
    report.inputs = {"kind": "random", "samples": samples, "batch_sizes": sizes}
    return report

