"""What every stage of ``prune-export`` works with: the options, the output folder, the lazily loaded
models, and the stage driver that skips a stage whose inputs and options are unchanged.

The stages (:mod:`isodeploy.pipeline.stages`) and the table that orders them
(:mod:`isodeploy.pipeline.stage_table`) import this module; nothing here imports them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from isodeploy.core.errors import ExitCode, IsodeployError
from isodeploy.core.output_folder import OutputFolder
from isodeploy.pipeline.state import StageBook, StageRecord, read_state, stage_key

# The exit codes a stage sets through :meth:`Pipeline.fail`; the values are the ExitCode members.
EXIT_NUMERICS, EXIT_NO_TENSORRT, EXIT_NO_CUDA = ExitCode.NUMERIC, ExitCode.NO_TENSORRT, ExitCode.NO_CUDA


@dataclass
class PipelineOptions:
    model: str
    output: Path
    target: str = "onnx"
    preset: str | None = None
    ratio: float | None = None
    weights: str = "pretrained"
    img_size: int | None = None
    finetune_data: Path | None = None
    epochs: int = 1
    bench: bool = True
    bench_batch: int | None = None  # None → the protocol: 8 on CPU (GPU runs use 256)
    bench_iters: int | None = None  # step counts fix the protocol (fixed: default 20 warm-up + 100 timed steps)
    bench_warmup: int | None = None
    bench_protocol: str | None = None  # adaptive (default) | paper | fixed
    bench_budget: float | None = None  # adaptive: seconds of timing per runtime
    uniform_twin: bool = True  # build and bench the uniform-width model at the pruned MACs
    bench_threads: int | None = None
    verify_inputs: int = 8
    force: bool = False
    triton_name: str | None = None
    create_kwargs: dict[str, Any] = field(default_factory=dict)  # timm kwargs (tests build tiny variants)
    target_latency: str | None = None  # prune to a measured latency (the bench's runtime, batch, threads)
    latency_table: Path | None = None


@dataclass
class PipelineResult:
    folder: Path
    records: list[StageRecord]
    exit_code: int
    message: str
    report: dict[str, Any]


class Pipeline:
    """Runs the stages; models are loaded only when a stage that needs them actually runs."""

    def __init__(self, opts: PipelineOptions, say: Callable[[str], None], progress: Callable[[], Any] | None = None) -> None:
        self.opts = opts
        self.dir = Path(opts.output)
        self.say = say
        self.progress = progress  # makes the bench's reporter (isodeploy.benchmarking.progress); None: silent timing loops
        self.book = StageBook(self.dir, opts.force)
        self._dense = None
        self._pruned = None
        self.exit_code = ExitCode.OK
        self.message = ""
        self.out: OutputFolder | None = None  # set while run() holds the folder
        self.skipped: list[tuple[str, str]] = []  # (stage, why) for the report

    # -- lazily loaded models ------------------------------------------------------------------
    @property
    def dense(self):
        if self._dense is None:
            from isodeploy.loading import load_model

            self._dense = load_model(self.opts.model, weights=self.opts.weights, img_size=self.opts.img_size, **self.opts.create_kwargs)
        return self._dense

    @property
    def pruned(self):
        if self._pruned is None:
            from isodeploy.pruning.spec import load_folder

            self._pruned = load_folder(self.model_dir)
        return self._pruned

    @property
    def model_dir(self) -> Path:
        tuned = self.dir / "finetune" / "best"
        return tuned if self.opts.finetune_data and (tuned / "isodeploy.json").is_file() else self.dir

    # -- stage driver ---------------------------------------------------------------------------
    def stage(self, name: str, options: dict[str, Any], inputs: list[Path], outputs: list[str],
              work: Callable[[], dict[str, Any] | None]) -> StageRecord:
        key = stage_key(name, options, inputs)
        if self.out is not None:
            self.out.claim(*outputs)  # refuses to overwrite an entry isodeploy did not write
        if self.book.is_fresh(name, key):
            old = self.book.recorded(name) or {}
            record = StageRecord(name=name, key=key, seconds=0.0, outputs=outputs, status="skipped", detail=old.get("detail", {}))
            self.say(f"[dim]{name}: unchanged, skipped[/]")
            self.book.record(record)
            return record
        self.say(f"[bold]{name}[/] …")
        self.book.forget(name)  # a run killed inside work() must not leave the old record looking fresh
        start = time.perf_counter()
        detail = work() or {}
        seconds = time.perf_counter() - start
        status = detail.pop("_status", "done")
        record = StageRecord(name=name, key=key, seconds=seconds, outputs=outputs, status=status, detail=detail)
        self.book.record(record)
        self.say(f"{name}: {status} in {seconds:.1f} s")
        return record

    def check_model_matches(self) -> None:
        """An isodeploy folder of another model is replaced only with --force (only its isodeploy files)."""
        have = read_state(self.dir).get("source")
        have = have.get("timm") if isinstance(have, dict) else None
        if not have:
            return
        from isodeploy.loading import resolve

        wanted = resolve(self.opts.model).timm_name
        if have != wanted and not self.opts.force:
            raise IsodeployError(f"-o {self.dir} holds a run for '{have}', not '{wanted}'; choose another folder or pass --force")

    def check_bench_batch(self) -> None:
        """A --bench-batch far beyond memory fails now, not after pruning and exporting."""
        if not self.opts.bench or not self.opts.bench_batch:
            return
        source = read_state(self.dir).get("source")
        size = source.get("input_size") if isinstance(source, dict) else None
        if not (isinstance(size, list) and len(size) == 3 and all(isinstance(v, int) for v in size)):
            size = list(self.dense.input_size)
        from isodeploy.core.limits import check_batch_fits

        check_batch_fits(self.opts.bench_batch, size, "--bench-batch")

    def check_disk(self) -> None:
        """Fail before any work when the artifacts can't fit: weights, two FP32 ONNX files, an FP16 one
        and an engine come to about 5× the dense model's FP32 size."""
        import shutil

        params = read_state(self.dir).get("params", {})  # a re-run need not load the model
        params = params.get("before") if isinstance(params, dict) else None
        if not isinstance(params, int) or params <= 0:
            params = sum(p.numel() for p in self.dense.model.parameters())
        need = 5 * 4 * params
        free = shutil.disk_usage(self.dir).free
        if free < need:
            raise IsodeployError(f"not enough disk in {self.dir}: {free / 2**20:.0f} MB free, the artifacts need about "
                                 f"{need / 2**20:.0f} MB; free some space or choose another -o")

    def fail(self, code: int, message: str) -> bool:
        self.exit_code, self.message = code, message
        return False


def load_json(path: Path) -> dict[str, Any] | None:
    """A JSON object the run wrote, or None when it is missing or damaged (the report says so)."""
    from isodeploy.core.jsonread import read_json_quietly

    data = read_json_quietly(Path(path))
    return data if isinstance(data, dict) else None
