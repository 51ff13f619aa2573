"""The stages of ``prune-export`` as data: what each reads, what it writes, when it runs, and whether
a failure stops the run. The runner (:mod:`isodeploy.pipeline.run`) walks this table; the table in
``docs/architecture.md`` is checked against it by a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from isodeploy.pipeline import stages
from isodeploy.pipeline.context import Pipeline, PipelineOptions
from isodeploy.pipeline.state import STATE_FILE


@dataclass(frozen=True)
class StageSpec:
    """One row of the pipeline: ``run`` returns True to go on."""

    name: str
    run: Callable[[Pipeline], bool]
    reads: tuple[str, ...]  # folder entries (or "MODEL") the stage's record is keyed on
    writes: tuple[str, ...]  # top-level entries it owns in the output folder
    when: str = "always"  # always | trt (--target trt) | bench (--bench, the default)
    stops_run: bool = True  # a failure skips every later stage but the report

    def runs_for(self, opts: PipelineOptions) -> bool:
        return self.when == "always" or (self.when == "trt" and opts.target == "trt") or (self.when == "bench" and opts.bench)


STAGES: tuple[StageSpec, ...] = (
    StageSpec("prune", stages.prune, ("MODEL",), (stages.WEIGHTS, STATE_FILE)),
    StageSpec("finetune", stages.finetune, (stages.WEIGHTS,), ("finetune",)),  # only with --finetune-data
    StageSpec("export", stages.export, (stages.WEIGHTS,), (stages.ONNX,)),
    StageSpec("verify", stages.verify, (stages.ONNX, stages.WEIGHTS), ("verify.json",)),
    StageSpec("fp16", stages.fp16, (stages.ONNX,), (stages.FP16_ONNX, "verify_fp16.json"), when="trt"),
    StageSpec("engine", stages.engine, (stages.FP16_ONNX,), (stages.PLAN, "model.plan.json", "verify_engine.json"), when="trt"),
    StageSpec("bench", stages.bench, ("MODEL", stages.ONNX),
              (stages.DENSE_ONNX, stages.UNIFORM_DIR, stages.UNIFORM_ONNX, stages.STANDARD_ONNX, "bench.json", stages.PLOT),
              when="bench", stops_run=False),
    StageSpec("triton", stages.triton, (stages.ONNX + " or " + stages.PLAN,), ("triton",)),
)

REPORT_FILES = ("report.md", "report.json")

#: Every top-level entry a pipeline run writes (their old-style temporaries are cleaned, foreign files refused).
KNOWN_OUTPUTS: tuple[str, ...] = tuple(dict.fromkeys(name for spec in STAGES for name in spec.writes)) + REPORT_FILES
