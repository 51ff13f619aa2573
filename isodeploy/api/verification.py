"""The public verify API: an ONNX file (FP32 or FP16) or a TensorRT engine against a reference, with
pass/fail gates. ``isodeploy verify`` is a thin shell over :func:`verify_artifact`, and
:func:`isodeploy.verify` (:mod:`isodeploy.api.deploy`) goes through it too: one door, the same
defaults, the same one-line errors (a failed gate is exit code ``NUMERIC``, 1).

:class:`Gates` and :class:`VerifyReport` are re-exported from :mod:`isodeploy.export.verify`
(the thresholds and what one input set measured).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from isodeploy.core.api_args import check_arg, check_path_arg
from isodeploy.core.errors import ExitCode, IsodeployError, ParameterError
from isodeploy.export.verify import Gates, VerifyReport

__all__ = ["GATE_NAMES", "Gates", "VerifyOutcome", "VerifyReport", "check_verify_options", "verify_artifact"]

#: the named gate sets: auto picks fp16 for FP16 ONNX files and engines, else fp32
GATE_NAMES = ("auto", "fp32", "fp16")
#: the range each threshold override may take (NaN, infinities or values outside are refused)
_GATE_RANGES = {"atol": (0.0, float("inf")), "rtol": (0.0, float("inf")), "min_cosine": (-1.0, 1.0), "min_top1": (0.0, 1.0)}


@dataclass
class VerifyOutcome:
    """What :func:`verify_artifact` found: one :class:`VerifyReport` per input set (random, and
    images when ``data=`` was given), the reference's label, the artifact's precision and the gates
    applied. ``to_dict()`` is the ``--json`` payload of ``isodeploy verify``."""

    passed: bool
    artifact: str
    reference: str
    precision: str
    gates: Gates
    reports: list[VerifyReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "artifact": self.artifact, "reference": self.reference, "precision": self.precision,
                "gates": self.gates.__dict__, "sets": [r.to_dict() for r in self.reports]}

    def error(self) -> IsodeployError | None:
        """The one-line error (exit code ``NUMERIC``) a failed gate raises; None when every set passed."""
        if self.passed:
            return None
        failed = next(r for r in self.reports if not r.passed)
        first = next(f for r in self.reports for f in r.failures)
        return IsodeployError(f"verify failed ({self.gates.name} gates, {failed.label} inputs): {first}", exit_code=ExitCode.NUMERIC)

    def raise_if_failed(self) -> None:
        """Raise :meth:`error` when a gate failed (``isodeploy verify`` does, after printing the tables)."""
        error = self.error()
        if error is not None:
            raise error


def verify_artifact(artifact: str | Path, reference: Any = None, *, weights: str | None = None, img_size: int | None = None,
                    inputs: int = 16, data: str | Path | None = None, batch_sizes: str | Sequence[int] = (1, 7),
                    gates: str | Gates = "auto", atol: float | None = None, rtol: float | None = None,
                    min_cosine: float | None = None, min_top1: float | None = None, threads: int | None = None,
                    runtime: str = "ort", device: str = "cpu", example_inputs: Any = None,
                    progress: Callable[[str], None] | None = None, raise_on_failure: bool = True) -> VerifyOutcome:
    """Compare ``artifact`` (an ``.onnx``, FP32 or FP16, or a ``.plan``) with a reference on the same
    inputs, each run at every batch size: max/mean/p99 |err|, max rel err, cosine, top-1/top-5.

    ``reference``: a model name, alias or isodeploy folder (run in PyTorch FP32, with ``weights`` /
    ``img_size``), an FP32 ``.onnx`` (onnxruntime), an ``nn.Module`` (``example_inputs`` gives its input
    size when it does not know it), or None: the model named in the artifact's metadata. ``inputs``
    random-normal samples, plus at most that many images from the folder ``data``. ``batch_sizes``:
    ints or ``"1,7"``. ``gates``: ``"auto"`` (fp16 for FP16 artifacts, else fp32), ``"fp32"``,
    ``"fp16"`` or a :class:`Gates`; ``atol``/``rtol``/``min_cosine``/``min_top1`` override its thresholds.
    ``threads``/``runtime``/``device``: how a ``.onnx`` runs (onnxruntime ``ort`` or onnx's numpy
    ``reference`` evaluator; ``cpu`` or ``cuda``). ``progress`` is told each phase.

    Returns a :class:`VerifyOutcome`. Bad options fail before anything is loaded; a failed gate raises
    an :class:`IsodeployError` with exit code ``NUMERIC`` unless ``raise_on_failure=False``.
    """
    from isodeploy.core.inputs import image_samples, random_samples, to_batches
    from isodeploy.export.reference import check_same_input, open_reference
    from isodeploy.export.verify import verify
    from isodeploy.runtime.open import open_runner, runner_precision

    artifact = check_path_arg("artifact", artifact)
    sizes = check_verify_options(batch_sizes=batch_sizes, inputs=inputs, gates=gates, atol=atol, rtol=rtol,
                                 min_cosine=min_cosine, min_top1=min_top1)
    check_arg("progress", progress, "callable", optional=True)
    phase = progress or (lambda _msg: None)

    phase(f"opening {artifact}")
    candidate = open_runner(artifact, threads=threads, runtime=runtime, device=device)
    phase("building the reference")
    if _is_module(reference):
        ref = _module_reference(reference, candidate, example_inputs, img_size)
    elif reference is None or isinstance(reference, (str, Path)):
        ref = open_reference(None if reference is None else str(reference), candidate, weights=weights, img_size=img_size,
                             threads=threads)
    else:
        raise ParameterError("reference", "must be a model name, an isodeploy folder, an FP32 .onnx path, an nn.Module "
                                          f"or None; got {type(reference).__name__}")
    input_size = check_same_input(candidate, artifact, ref)
    from isodeploy.core.limits import check_batch_fits

    with _named("batch_sizes"):
        check_batch_fits(max(sizes), input_size, "batch_sizes=")  # before any batch is built
    precision = runner_precision(candidate)
    chosen = gates if isinstance(gates, Gates) else Gates.for_precision(precision if gates == "auto" else gates)
    chosen = chosen.override(atol=atol, rtol=rtol, min_cosine=min_cosine, min_top1=min_top1)
    sets = [("random", random_samples(inputs, input_size))]
    if data is not None:
        sets.append(("images", image_samples(Path(data), inputs, input_size, ref.mean, ref.std)))
    reports = []
    for label, samples in sets:
        phase(f"running {len(samples)} {label} samples at batch sizes {sizes}")
        report = verify(candidate, ref.runner, to_batches(samples, sizes), chosen, label=label)
        report.inputs = {"kind": label, "samples": int(len(samples)), "batch_sizes": sizes}
        reports.append(report)
    outcome = VerifyOutcome(passed=all(r.passed for r in reports), artifact=str(artifact), reference=ref.label,
                            precision=precision, gates=chosen, reports=reports)
    if raise_on_failure:
        outcome.raise_if_failed()
    return outcome


def check_verify_options(*, batch_sizes: str | Sequence[int] = (1, 7), inputs: int = 16, gates: str | Gates = "auto",
                         atol: float | None = None, rtol: float | None = None, min_cosine: float | None = None,
                         min_top1: float | None = None) -> list[int]:
    """The checks :func:`verify_artifact` makes before it opens anything, on their own: call it to refuse
    bad options before other work (the CLI does, before it looks at MODEL). Returns the batch sizes."""
    sizes = _batch_sizes(batch_sizes)
    for name, value in (("atol", atol), ("rtol", rtol), ("min_cosine", min_cosine), ("min_top1", min_top1)):
        _check_threshold(name, value)  # NaN or out of range would pass or fail everything silently
    if isinstance(inputs, bool) or not isinstance(inputs, int) or inputs < 1:
        raise ParameterError("inputs", "must be at least 1")
    if not isinstance(gates, Gates) and gates not in GATE_NAMES:
        if isinstance(gates, str):
            raise ParameterError("gates", f"must be auto, fp32 or fp16, not '{gates}'")
        raise ParameterError("gates", f"must be auto, fp32, fp16 or a Gates object; got {type(gates).__name__}")
    return sizes


# -- helpers ----------------------------------------------------------------------------------------------
def _batch_sizes(value: Any) -> list[int]:
    """``"1,7"`` or ``(1, 7)`` as a list of positive ints, or one line naming ``batch_sizes``."""
    if isinstance(value, str):
        try:
            sizes = [int(s) for s in value.split(",") if s.strip()]
        except ValueError:
            sizes = []
        if not sizes or min(sizes) < 1:
            raise ParameterError("batch_sizes", f"must be positive integers separated by commas (e.g. 1,7), not '{value}'")
        return sizes
    ok = isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in value)
    if not ok:
        got = list(value) if isinstance(value, (list, tuple)) else type(value).__name__
        raise ParameterError("batch_sizes", f"must be positive integers, e.g. (1, 7) or '1,7'; got {got}")
    return [int(b) for b in value]


def _check_threshold(name: str, value: Any) -> None:
    from isodeploy.core.artifacts import check_fraction

    low, high = _GATE_RANGES[name]
    with _named(name):
        check_fraction(value, f"{name}=", low=low, high=high, high_open=False)


@contextmanager
def _named(param: str) -> Iterator[None]:
    """An internal check's line that starts ``param= `` as a :class:`ParameterError`, so the CLI shows its flag."""
    try:
        yield
    except ParameterError:
        raise
    except IsodeployError as exc:
        text, prefix = str(exc), f"{param}= "
        if not text.startswith(prefix):
            raise
        raise ParameterError(param, text[len(prefix):], exc.exit_code) from None


def _is_module(reference: Any) -> bool:
    if reference is None or isinstance(reference, (str, Path)):
        return False
    from torch import nn

    return isinstance(reference, nn.Module)


def _module_reference(module: Any, candidate: Any, example_inputs: Any, img_size: int | None):
    """An ``nn.Module`` run in PyTorch FP32; without ``example_inputs`` it takes the artifact's own input shape."""
    import torch

    from isodeploy.api.loaded import as_loaded
    from isodeploy.export.reference import Reference, candidate_input_size
    from isodeploy.runtime.torch_runner import TorchRunner

    if example_inputs is None and not getattr(module, "_isodeploy_input", None) and candidate_input_size(candidate):
        example_inputs = torch.zeros(2, *candidate_input_size(candidate))
    loaded = as_loaded(module, example_inputs, img_size)
    runner = TorchRunner(loaded.model, name=f"torch:{loaded.timm_name}", input_size=loaded.input_size,
                         output_names=list(candidate.output_names))
    return Reference(runner=runner, input_size=tuple(loaded.input_size), mean=loaded.mean, std=loaded.std, label=runner.name)
