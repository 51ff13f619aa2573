"""Benchmark a list of artifacts on a list of runtimes: the Python API behind ``isodeploy bench``.

For each artifact: load it once, count MACs/params when it traces back to a model, export an ONNX
(or build an engine) only when a runtime needs one, then per runtime time warm-up + timed steps and
measure peak memory. Everything that can fail on bad input is checked before the first model loads.
"""

from __future__ import annotations

import gc
import tempfile
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from isodeploy.bench import backends
from isodeploy.bench.artifacts import ArtifactRef, resolve_artifact, runtimes_for
from isodeploy.bench.envinfo import collect_env, describe_machine, usable_cores
from isodeploy.bench.report import BenchReport, BenchResult, LatencyStats
from isodeploy.errors import IsodeployError

DEFAULT_BATCH = {"cpu": 8, "cuda": 256}  # the paper's protocol: GPU batch 256, CPU batch 8


@dataclass
class BenchSettings:
    """What to measure and how; ``None`` fields take the protocol defaults in :meth:`resolved`."""

    runtimes: tuple[str, ...] = ("torch",)
    device: str | None = None  # None → cuda when trt is asked for, else cpu
    batch: int | None = None  # None → 256 on cuda, 8 on cpu
    warmup: int = 20
    iters: int = 100
    threads: int | None = None  # None → every usable core
    weights: str = "pretrained"
    img_size: int | None = None
    memory: bool = True
    precision: str = "fp32"  # torch on cuda may use fp16; engines carry their own precision

    def resolved(self) -> "BenchSettings":
        runtimes = tuple(dict.fromkeys(self.runtimes)) or ("torch",)
        device = self.device or ("cuda" if "trt" in runtimes else "cpu")
        if device not in DEFAULT_BATCH:
            raise IsodeployError(f"unknown device '{device}': use --device cpu or --device cuda")
        if "trt" in runtimes and device != "cuda":
            raise IsodeployError("--runtime trt runs TensorRT engines on the GPU: use --device cuda (or drop --device)")
        batch = self.batch if self.batch is not None else DEFAULT_BATCH[device]
        threads = self.threads if self.threads is not None else usable_cores()
        if batch < 1 or self.iters < 2 or self.warmup < 0 or threads < 1:
            raise IsodeployError(f"need --batch ≥ 1, --iters ≥ 2, --warmup ≥ 0 and --threads ≥ 1 (got {batch}, {self.iters}, {self.warmup}, {threads})")
        if self.precision not in ("fp32", "fp16"):
            raise IsodeployError(f"unknown precision '{self.precision}': use fp32 or fp16")
        return replace(self, runtimes=runtimes, device=device, batch=batch, threads=threads)


def ref_for_loaded(loaded: Any) -> ArtifactRef:
    """An :class:`ArtifactRef` for a model already built in Python (tests, notebooks, pipelines)."""
    folder = getattr(loaded, "folder", None)
    kind, label = ("folder", Path(folder).name) if folder else ("model", loaded.timm_name)
    return ArtifactRef(query=str(folder or loaded.timm_name), kind=kind, label=label, path=Path(folder) if folder else None,
                       pruned=bool(folder), source_model=str(folder or loaded.timm_name))


def check_environment(settings: BenchSettings, refs: list[ArtifactRef]) -> None:
    """TensorRT missing → exit 3; CUDA missing → exit 4 (scripts rely on these codes); exporter missing."""
    if "trt" in settings.runtimes:
        backends.require_tensorrt()
    if settings.device == "cuda":
        backends.require_cuda()
    needs_onnx = [r.label for r in refs if r.kind in ("model", "folder") and {"ort", "trt"} & set(settings.runtimes)]
    if needs_onnx:
        try:
            import isodeploy.export.onnx  # noqa: F401
        except ImportError as exc:
            raise IsodeployError(
                f"runtimes ort/trt on a model ({', '.join(needs_onnx)}) need the ONNX exporter (isodeploy.export.onnx), "
                "which this installation lacks; bench an exported .onnx instead"
            ) from exc


class _Bench:
    """State of one run: settings, progress display, scratch folder for on-the-fly exports."""

    def __init__(self, settings: BenchSettings, progress: Any, workdir: Path) -> None:
        self.s = settings
        self.progress = progress
        self.workdir = workdir

    def stage(self, text: str) -> Any:
        """A one-step progress line for work that is not a timing loop (loading, exporting, probing)."""
        return _Stage(self.progress, text)

    def load(self, ref: ArtifactRef, given: Any) -> Any:
        if given is not None:
            return given
        if ref.kind not in ("model", "folder"):
            return None
        from isodeploy.zoo import load_model

        with self.stage(f"loading {ref.label}"):
            return load_model(ref.query, weights=self.s.weights, img_size=self.s.img_size)

    def macs(self, ref: ArtifactRef, loaded: Any, notes: list[str]) -> tuple[int | None, int | None]:
        from isodeploy.bench.macs import count_macs

        try:
            with self.stage(f"counting MACs of {ref.label}"):
                if loaded is None:
                    if not ref.source_model:
                        notes.append(f"{ref.label}: no MACs (the {ref.kind} does not name the model it came from)")
                        return None, None
                    from isodeploy.zoo import load_model

                    kwargs = dict(ref.source_kwargs)
                    img = ref.img_size or kwargs.pop("img_size", None)
                    kwargs.pop("img_size", None)
                    loaded = load_model(ref.source_model, weights="random", img_size=img, **kwargs)
                report = count_macs(loaded.model, loaded.example_input(2))
            return report.macs, report.params
        except (IsodeployError, TypeError, ValueError, RuntimeError) as exc:  # MACs are best effort; latency still counts
            notes.append(f"{ref.label}: no MACs ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})")
            return None, None

    def onnx_for(self, ref: ArtifactRef, loaded: Any, cache: dict[str, Path]) -> Path:
        if ref.kind == "onnx":
            return ref.path  # type: ignore[return-value]
        if "onnx" not in cache:
            try:
                from isodeploy.export.onnx import export_onnx
            except ImportError as exc:
                raise IsodeployError(
                    "runtimes ort/trt on a model need the ONNX exporter (isodeploy.export.onnx), which this installation lacks; "
                    "bench an exported .onnx instead"
                ) from exc
            out = self.workdir / f"{_safe(ref.label)}.onnx"
            with self.stage(f"exporting {ref.label} to ONNX"):
                export_onnx(loaded, out)
            cache["onnx"] = out
        return cache["onnx"]

    def plan_for(self, ref: ArtifactRef, loaded: Any, cache: dict[str, Path]) -> Path:
        if ref.kind == "plan":
            return ref.path  # type: ignore[return-value]
        if "plan" not in cache:
            onnx_path = self.onnx_for(ref, loaded, cache)
            try:
                from isodeploy.export.tensorrt import build_engine
            except ImportError as exc:
                raise IsodeployError("the TensorRT builder (isodeploy.export.tensorrt) is not available; bench a built .plan instead") from exc
            out = self.workdir / f"{_safe(ref.label)}.plan"
            with self.stage(f"building a TensorRT engine for {ref.label}"):
                build_engine(onnx_path, out, precision="fp16", min_batch=1, opt_batch=self.s.batch, max_batch=self.s.batch)
            cache["plan"] = out
        return cache["plan"]

    def prepare(self, ref: ArtifactRef, runtime: str, loaded: Any, cache: dict[str, Path]) -> backends.Prepared:
        s = self.s
        if runtime == "torch":
            return backends.prepare_torch(loaded.model, loaded.input_size, batch=s.batch, device=s.device, threads=s.threads, precision=s.precision)
        if runtime == "ort":
            return backends.prepare_ort(self.onnx_for(ref, loaded, cache), batch=s.batch, device=s.device, threads=s.threads, img_size=s.img_size)
        size = list(loaded.input_size) if loaded is not None else ([3, s.img_size, s.img_size] if s.img_size else None)
        return backends.prepare_trt(self.plan_for(ref, loaded, cache), batch=s.batch, input_size=size)

    def memory(self, ref: ArtifactRef, runtime: str, loaded: Any, prepared: backends.Prepared, cache: dict[str, Path], notes: list[str]) -> Any:
        from isodeploy.bench import memory

        if not self.s.memory:
            return None
        if self.s.device == "cuda" or runtime == "trt":
            return prepared.read_memory()
        if runtime == "torch":
            spec = memory.probe_spec_for_model(loaded, batch=self.s.batch, threads=self.s.threads)
        else:
            spec = memory.probe_spec_for_onnx(self.onnx_for(ref, loaded, cache), batch=self.s.batch, threads=self.s.threads, img_size=self.s.img_size)
        with self.stage(f"peak memory of {ref.label} on {runtime} (fresh process)"):
            figure, why = memory.measure_peak_rss(spec)
        if why:
            notes.append(f"{ref.label}/{runtime}: {why}")
        return figure

    def run_one(self, ref: ArtifactRef, runtime: str, loaded: Any, cache: dict[str, Path], macs: tuple[int | None, int | None]) -> BenchResult:
        s = self.s
        with self.stage(f"preparing {ref.label} on {runtime}/{s.device}"):
            prepared = self.prepare(ref, runtime, loaded, cache)
        notes = list(prepared.notes)
        try:
            task = self.progress.add_task(f"{ref.label} · {runtime}/{s.device}", total=s.warmup + s.iters) if self.progress else None
            advance = (lambda n: self.progress.advance(task, n)) if task is not None else (lambda n: None)
            from isodeploy.bench.latency import time_steps

            samples = time_steps(prepared, warmup=s.warmup, iters=s.iters, advance=advance)
            mem = self.memory(ref, runtime, loaded, prepared, cache, notes)
        finally:
            prepared.close()
        return BenchResult(
            artifact=ref.query, label=ref.label, kind=ref.kind, pruned=ref.pruned, runtime=runtime, device=s.device or "cpu",
            precision=prepared.precision, batch=s.batch or 1, threads=s.threads, input_shape=prepared.input_shape,
            latency=LatencyStats.from_samples(samples, s.batch or 1), memory=mem, macs=macs[0], params=macs[1],
            timing=prepared.timing, notes=notes,
        )


class _Stage:
    def __init__(self, progress: Any, text: str) -> None:
        self.progress, self.text, self.task = progress, text, None

    def __enter__(self) -> "_Stage":
        if self.progress is not None:
            self.task = self.progress.add_task(self.text, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:  # stages vanish when done; the timing bars stay as a record
            self.progress.remove_task(self.task)


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def run_bench(items: Sequence[Any], settings: BenchSettings, *, progress: Callable[[], Any] | None = None,
              workdir: Path | None = None) -> BenchReport:
    """Benchmark ``items`` (ARTIFACT strings or :class:`~isodeploy.zoo.LoadedModel` objects).

    ``progress`` makes a ``rich.progress.Progress`` (None for silence); it starts only after every
    input check, so bad input fails with one line and no half-drawn display. Raises
    :class:`IsodeployError` on bad input before any model is loaded.
    """
    settings = settings.resolved()
    pairs: list[tuple[ArtifactRef, Any]] = []
    for item in items:
        if isinstance(item, (str, Path)):
            pairs.append((resolve_artifact(str(item), settings.img_size), None))
        else:
            pairs.append((ref_for_loaded(item), item))
    if not pairs:
        raise IsodeployError("no artifacts given: pass one or more models, isodeploy folders, .onnx or .plan files")
    for ref, _ in pairs:
        runtimes_for(ref, settings.runtimes)
    check_environment(settings, [ref for ref, _ in pairs])
    env = collect_env(settings.device or "cpu")
    results: list[BenchResult] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="isodeploy-bench-", dir=workdir) as tmp, (progress() if progress else nullcontext()) as bar:
        bench = _Bench(settings, bar, Path(tmp))
        for ref, given in pairs:
            loaded = bench.load(ref, given)
            macs = bench.macs(ref, loaded, notes)
            cache: dict[str, Path] = {}
            for runtime in runtimes_for(ref, settings.runtimes):
                results.append(bench.run_one(ref, runtime, loaded, cache, macs))
            del loaded
            gc.collect()
    if settings.device == "cpu":
        notes.append(f"CPU figures are relative: measured on {describe_machine(env)} with {settings.threads} threads; compare artifacts within one run, not across machines")
    noisy = [f"{r.label}/{r.runtime}" for r in results if r.latency.noisy]
    if noisy:
        notes.append(f"noisy runs (CV over 5 %): {', '.join(noisy)}; re-run on an idle machine or raise --iters")
    return BenchReport(
        results=results, env=env, settings=_settings_dict(settings), notes=notes,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _settings_dict(settings: BenchSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["runtimes"] = list(settings.runtimes)
    return data
