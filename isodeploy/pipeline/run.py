"""``prune-export``: every stage in order, each writing into one folder and skipped when unchanged.

load → prune → (fine-tune) → export FP32 ONNX → verify → [trt: FP16 ONNX → engine → verify engine]
→ bench → report.md/json → Triton repository. Exit codes (:class:`~isodeploy.core.errors.ExitCode`):
0 done, 1 a numeric check failed, 2 bad input, 3 TensorRT missing, 4 CUDA missing (stages up to the
FP16 ONNX still ran).

The run holds the output folder's lock throughout, replaces only entries the folder's ownership
marker lists as isodeploy's, and first removes temporaries of killed runs (docs/reliability.md).
"""

from __future__ import annotations

from typing import Any, Callable

from isodeploy.core.artifacts import legacy_entries
from isodeploy.core.cleanup import clean_system_temps
from isodeploy.core.errors import IsodeployError
from isodeploy.core.output_folder import open_output_folder
from isodeploy.loading import model_folder as folder_of
from isodeploy.pipeline import stages
from isodeploy.pipeline.context import Pipeline, PipelineOptions, PipelineResult
from isodeploy.pipeline.stage_table import KNOWN_OUTPUTS, REPORT_FILES, STAGES

__all__ = ["KNOWN_OUTPUTS", "PipelineOptions", "PipelineResult", "run_pipeline"]

def run_pipeline(opts: PipelineOptions, say: Callable[[str], None] = print, progress: Callable[[], Any] | None = None) -> PipelineResult:
    """Run ``prune-export`` for ``opts``: the options checked up front, then every stage of the table in order."""
    if opts.target not in ("onnx", "trt"):
        raise IsodeployError(f"--target must be onnx or trt; got '{opts.target}'")
    if opts.bench_batch is not None and opts.bench_batch < 1:
        raise IsodeployError(f"--bench-batch must be ≥ 1; got {opts.bench_batch}")
    from isodeploy.benchmarking.protocol import make_protocol

    make_protocol(opts.bench_protocol, warmup=opts.bench_warmup, iters=opts.bench_iters, budget_s=opts.bench_budget, prefix="bench-")
    if opts.epochs < 1:
        raise IsodeployError(f"--epochs must be ≥ 1; got {opts.epochs}")
    if opts.verify_inputs < 1:
        raise IsodeployError(f"verify inputs must be ≥ 1; got {opts.verify_inputs}")
    if opts.ratio is not None:
        from isodeploy.core.artifacts import check_fraction

        check_fraction(opts.ratio, "--ratio", low=0.0, high=1.0)
    if opts.finetune_data is not None:  # checked now, not after the prune stage
        from isodeploy.train.data import scan_usable
        from isodeploy.train.dist import DistEnv

        import torch

        single = DistEnv(rank=0, world=1, local_rank=0, device=torch.device("cpu"), backend=None)
        scan_usable(str(opts.finetune_data), single, "--finetune-data")
    return _run(Pipeline(opts, say, progress))


def _run(p: Pipeline) -> PipelineResult:
    """Hold the output folder for the whole run, check it up front, then walk the stage table."""
    model_folder = folder_of(p.opts.model)  # a name is a model even when -o has that name
    with open_output_folder(p.dir, adopt=legacy_entries, input_folder=model_folder, known_names=KNOWN_OUTPUTS) as out:
        p.out = out
        p.dir = out.path
        p.book.folder = out.path
        p.check_model_matches()
        # refuse up front, before any stage replaces anything, if an artifact name is taken by a foreign file
        out.claim(*[name for name in KNOWN_OUTPUTS if (out.path / name).exists() or (out.path / name).is_symlink()])
        p.check_disk()
        p.check_bench_batch()
        clean_system_temps()
        try:
            for spec in STAGES:  # in table order; a failed stage that stops the run skips the rest
                if spec.runs_for(p.opts) and not spec.run(p) and spec.stops_run:
                    break
            out.claim(*REPORT_FILES)
            report = stages.report(p)
        finally:
            p.out = None
    return PipelineResult(p.dir, p.book.records, p.exit_code, p.message, report)
