"""``prune-export``: every stage in order, each writing into one folder and skipped when unchanged.

load → prune → (fine-tune) → export FP32 ONNX → verify → [trt: FP16 ONNX → engine → verify engine]
→ bench → report.md/json → Triton repository. Exit codes (:class:`~isodeploy.core.errors.ExitCode`):
0 done, 1 a numeric check failed, 2 bad input, 3 TensorRT missing, 4 CUDA missing (stages up to the
FP16 ONNX still ran).

The run holds the output folder's lock throughout, replaces only entries the folder's ownership
marker lists as isodeploy's, and first removes temporaries of killed runs (docs/reliability.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from isodeploy.core.artifacts import legacy_entries
from isodeploy.core.errors import ExitCode, IsodeployError
from isodeploy.core.cleanup import clean_system_temps
from isodeploy.core.output_folder import OutputFolder, open_output_folder
from isodeploy.pipeline.state import STATE_FILE, StageBook, StageRecord, read_state, stage_key

# Kept for the stage modules; the values are the ExitCode members.
EXIT_NUMERICS, EXIT_NO_TENSORRT, EXIT_NO_CUDA = ExitCode.NUMERIC, ExitCode.NO_TENSORRT, ExitCode.NO_CUDA
#: Entries a pipeline run writes at the folder's top level (their old-style temporaries are cleaned).
KNOWN_OUTPUTS = ("model.safetensors", STATE_FILE, "model.onnx", "dense.onnx", "model.fp16.onnx", "model.plan",
                 "model.plan.json", "verify.json", "verify_fp16.json", "verify_engine.json", "bench.json",
                 "report.md", "report.json", "triton", "finetune", "uniform", "uniform.onnx", "standard.onnx",
                 "latency_vs_macs.png")


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
        self.progress = progress  # makes the bench's reporter (isodeploy.bench.progress); None: silent timing loops
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
            from isodeploy.zoo import load_model

            self._dense = load_model(self.opts.model, weights=self.opts.weights, img_size=self.opts.img_size, **self.opts.create_kwargs)
        return self._dense

    @property
    def pruned(self):
        if self._pruned is None:
            from isodeploy.prune.spec import load_folder

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

    def run(self) -> PipelineResult:
        from isodeploy.pipeline import stages

        from isodeploy.zoo.load import model_folder as folder_of

        model_folder = folder_of(self.opts.model)  # a name is a model even when -o has that name
        with open_output_folder(self.dir, adopt=legacy_entries, input_folder=model_folder, known_names=KNOWN_OUTPUTS) as out:
            self.out = out
            self.dir = out.path
            self.book.folder = out.path
            self._check_model_matches()
            # refuse up front, before any stage replaces anything, if an artifact name is taken by a foreign file
            out.claim(*[name for name in KNOWN_OUTPUTS if (out.path / name).exists() or (out.path / name).is_symlink()])
            self._check_disk()
            self._check_bench_batch()
            clean_system_temps()
            try:
                ok = stages.prune(self) and stages.finetune(self) and stages.export(self) and stages.verify(self)
                if ok and self.opts.target == "trt":
                    ok = stages.fp16(self) and stages.engine(self)
                if ok and self.opts.bench:
                    stages.bench(self)
                if ok:
                    stages.triton(self)
                out.claim("report.md", "report.json")
                report = stages.report(self)
            finally:
                self.out = None
        return PipelineResult(self.dir, self.book.records, self.exit_code, self.message, report)

    def _check_model_matches(self) -> None:
        """An isodeploy folder of another model is replaced only with --force (only its isodeploy files)."""
        have = read_state(self.dir).get("source")
        have = have.get("timm") if isinstance(have, dict) else None
        if not have:
            return
        from isodeploy.zoo import resolve

        wanted = resolve(self.opts.model).timm_name
        if have != wanted and not self.opts.force:
            raise IsodeployError(f"-o {self.dir} holds a run for '{have}', not '{wanted}'; choose another folder or pass --force")

    def _check_bench_batch(self) -> None:
        """A --bench-batch far beyond memory fails now, not after pruning and exporting."""
        if not self.opts.bench or not self.opts.bench_batch:
            return
        source = read_state(self.dir).get("source")
        size = source.get("input_size") if isinstance(source, dict) else None
        if not (isinstance(size, list) and len(size) == 3 and all(isinstance(v, int) for v in size)):
            size = list(self.dense.input_size)
        from isodeploy.core.limits import check_batch_fits

        check_batch_fits(self.opts.bench_batch, size, "--bench-batch")

    def _check_disk(self) -> None:
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


def run_pipeline(opts: PipelineOptions, say: Callable[[str], None] = print, progress: Callable[[], Any] | None = None) -> PipelineResult:
    if opts.target not in ("onnx", "trt"):
        raise IsodeployError(f"--target must be onnx or trt; got '{opts.target}'")
    if opts.bench_batch is not None and opts.bench_batch < 1:
        raise IsodeployError(f"--bench-batch must be ≥ 1; got {opts.bench_batch}")
    from isodeploy.bench.protocol import make_protocol

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
    return Pipeline(opts, say, progress).run()


def load_json(path: Path) -> dict[str, Any] | None:
    """A JSON object the run wrote, or None when it is missing or damaged (the report says so)."""
    from isodeploy.core.jsonread import read_json_quietly

    data = read_json_quietly(Path(path))
    return data if isinstance(data, dict) else None
