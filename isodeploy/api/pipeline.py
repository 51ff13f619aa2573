"""What ``isodeploy prune-export MODEL -o DIR`` does, as one Python call: :func:`prune_export`.

prune → (fine-tune) → export ONNX → verify → [FP16 ONNX → TensorRT engine → verify] → bench → report
→ Triton repo, each stage writing into one folder and skipped on a re-run when unchanged.

Re-exported as they are: :class:`PipelineOptions`, :class:`PipelineResult` and :func:`run_pipeline`
(from :mod:`isodeploy.pipeline.run`, for callers who build the options themselves),
:class:`CallbackReporter` (the bench's progress lines through a callback, from
:mod:`isodeploy.benchmarking.progress`) and :func:`print_summary` (the command's table, from
:mod:`isodeploy.pipeline.summary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from isodeploy.api.files import Warn, check_report_paths, warn_python, write_json_atomic
from isodeploy.api.model_args import model_argument_warnings
from isodeploy.benchmarking.progress import CallbackReporter
from isodeploy.pipeline.run import KNOWN_OUTPUTS, PipelineOptions, PipelineResult, run_pipeline
from isodeploy.pipeline.summary import print_summary

__all__ = ["CallbackReporter", "PipelineOptions", "PipelineResult", "print_summary", "prune_export", "run_pipeline"]


def prune_export(model: str, output: str | Path, *, target: str = "onnx", preset: str | None = None, ratio: float | None = None,
                 weights: str = "pretrained", img_size: int | None = None, finetune_data: str | Path | None = None,
                 epochs: int = 1, bench: bool = True, bench_batch: int | None = None, bench_protocol: str | None = None,
                 bench_budget: float | None = None, bench_iters: int | None = None, bench_warmup: int | None = None,
                 uniform_twin: bool = True, threads: int | None = None, force: bool = False,
                 json_path: str | Path | None = None, say: Callable[[str], None] = print,
                 progress: Callable[[], Any] | None = None, warn: Warn = warn_python,
                 create_kwargs: dict[str, Any] | None = None, target_latency: str | float | None = None,
                 latency_table: str | Path | None = None) -> PipelineResult:
    """Run the whole pipeline for MODEL into ``output``, with the ``isodeploy prune-export`` defaults.

    ``target``: ``onnx`` (ONNX + onnxruntime) or ``trt`` (adds an FP16 ONNX and a TensorRT engine).
    Without ``preset``/``ratio`` an alias uses its own recipe. Bad input raises
    :class:`~isodeploy.api.IsodeployError` before any stage runs (``output`` and ``json_path`` included);
    a failed numeric check or a missing TensorRT/GPU does not raise: the result's ``exit_code``
    (1, 3 or 4; 0 when done) and ``message`` say so, and its ``report`` is what ``json_path`` gets.
    ``say`` gets one line per stage, ``progress`` makes the bench's reporter (e.g.
    ``lambda: CallbackReporter(print)``; None: silent timing), ``warn`` the advisory lines.
    ``create_kwargs`` go to the model's builder (``num_classes=10``). ``target_latency`` (``'300ms'`` or
    ``0.5`` × dense) prunes to a measured latency on the bench's runtime, batch and threads instead of
    a recipe; ``latency_table`` is a table file to reuse or write (:func:`~isodeploy.api.latency_settings`).
    """
    for line in model_argument_warnings(model, weights, img_size):  # also: a factory named here is trusted
        warn(line)
    output = Path(output)
    if target_latency is not None:
        from isodeploy.latency.settings import make_settings, refuse_explicit_cuts

        make_settings(target_latency, latency_table=latency_table, batch=bench_batch, threads=threads)  # one line, before any stage
        refuse_explicit_cuts([flag for flag, v in (("--preset", preset), ("--ratio", ratio)) if v is not None])
    elif latency_table is not None:
        warn("--latency-table is ignored without --target-latency")
    check_report_paths({"--json": json_path}, inputs=[model, weights], folders=[(output, KNOWN_OUTPUTS)])
    opts = PipelineOptions(model=model, output=output, target=target, preset=preset, ratio=ratio, weights=weights,
                           img_size=img_size, finetune_data=Path(finetune_data) if finetune_data is not None else None,
                           epochs=epochs, bench=bench, bench_batch=bench_batch, bench_iters=bench_iters,
                           bench_warmup=bench_warmup, bench_protocol=bench_protocol, bench_budget=bench_budget,
                           uniform_twin=uniform_twin, bench_threads=threads, force=force, create_kwargs=dict(create_kwargs or {}),
                           target_latency=None if target_latency is None else str(target_latency),
                           latency_table=Path(latency_table) if latency_table is not None else None)
    result = run_pipeline(opts, say, progress=progress)
    if json_path:
        write_json_atomic(Path(json_path), result.report)
    return result
