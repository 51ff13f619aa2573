"""``prune-export``: every stage in order, each writing into one folder and skipped when unchanged.

load → prune → (fine-tune) → export FP32 ONNX → verify → [trt: FP16 ONNX → engine → verify engine]
→ bench → report.md/json → Triton repository. Exit codes: 0 done, 1 a numeric check failed,
2 bad input, 3 TensorRT missing, 4 CUDA missing (stages up to the FP16 ONNX still ran).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from isodeploy.errors import IsodeployError
from isodeploy.pipeline.state import StageBook, StageRecord, clean_stale_temporaries, read_state, stage_key

EXIT_NUMERICS, EXIT_NO_TENSORRT, EXIT_NO_CUDA = 1, 3, 4


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
    bench_batch: int = 1
    bench_iters: int = 10
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

    def __init__(self, opts: PipelineOptions, say: Callable[[str], None]) -> None:
        self.opts = opts
        self.dir = Path(opts.output)
        self.say = say
        self.book = StageBook(self.dir, opts.force)
        self._dense = None
        self._pruned = None
        self.exit_code = 0
        self.message = ""
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
        if self.book.is_fresh(name, key):
            old = self.book.recorded(name) or {}
            record = StageRecord(name=name, key=key, seconds=0.0, outputs=outputs, status="skipped", detail=old.get("detail", {}))
            self.say(f"[dim]{name}: unchanged, skipped[/]")
            self.book.record(record)
            return record
        self.say(f"[bold]{name}[/] …")
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

        self._check_output_folder()
        removed = clean_stale_temporaries(self.dir)
        if removed:
            self.say(f"removed {len(removed)} temporary file(s) left by an interrupted run")
        ok = stages.prune(self) and stages.finetune(self) and stages.export(self) and stages.verify(self)
        if ok and self.opts.target == "trt":
            ok = stages.fp16(self) and stages.engine(self)
        if ok and self.opts.bench:
            stages.bench(self)
        if ok:
            stages.triton(self)
        report = stages.report(self)
        return PipelineResult(self.dir, self.book.records, self.exit_code, self.message, report)

    def _check_output_folder(self) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise IsodeployError(f"-o {self.dir} is a file; give a folder path")
        if self.dir.is_dir() and any(self.dir.iterdir()):
            state = read_state(self.dir)
            if not state:
                raise IsodeployError(f"-o {self.dir} is a non-empty folder that is not an isodeploy output; choose another")
            from isodeploy.zoo import resolve

            wanted = resolve(self.opts.model).timm_name
            have = state.get("source", {}).get("timm")
            if have and have != wanted and not self.opts.force:
                raise IsodeployError(f"-o {self.dir} holds a run for '{have}', not '{wanted}'; choose another folder or pass --force")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._check_disk()

    def _check_disk(self) -> None:
        """Fail before any work when the artifacts can't fit: weights, two FP32 ONNX files, an FP16 one
        and an engine come to about 5× the dense model's FP32 size."""
        import shutil

        params = read_state(self.dir).get("params", {}).get("before")  # a re-run need not load the model
        if params is None:
            params = sum(p.numel() for p in self.dense.model.parameters())
        need = 5 * 4 * params
        free = shutil.disk_usage(self.dir).free
        if free < need:
            raise IsodeployError(f"not enough disk in {self.dir}: {free / 2**20:.0f} MB free, the artifacts need about "
                                 f"{need / 2**20:.0f} MB; free some space or choose another -o")

    def fail(self, code: int, message: str) -> bool:
        self.exit_code, self.message = code, message
        return False


def run_pipeline(opts: PipelineOptions, say: Callable[[str], None] = print) -> PipelineResult:
    if opts.target not in ("onnx", "trt"):
        raise IsodeployError(f"--target must be onnx or trt; got '{opts.target}'")
    if opts.bench_iters < 2 or opts.bench_batch < 1:
        raise IsodeployError("--bench-iters must be ≥ 2 and --bench-batch ≥ 1")
    return Pipeline(opts, say).run()


def load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
