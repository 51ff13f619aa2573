"""Benchmark a list of artifacts on a list of runtimes: the Python API behind ``isodeploy bench``.

For each artifact: load it once, count MACs/params when it traces back to a model, export an ONNX
(or build an engine, its profile tuned for the batch measured) only when a runtime needs one, and make
its runner. Then the timing loop of the run's protocol (:mod:`isodeploy.benchmarking.protocol`,
:mod:`isodeploy.benchmarking.schedule`): interleaved rounds, so that a machine that slows down mid-run slows
every artifact alike, and ratios come from paired per-round values. The adaptive default stops once
the headline ratios' intervals are tight or its time budget is spent. Peak memory is measured
afterwards, each runner in a fresh process by one method per device. Everything that can fail on bad
input is checked before the first model loads.
"""

from __future__ import annotations

import gc
import os
import tempfile
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from isodeploy.benchmarking import backends, memory
from isodeploy.benchmarking.artifacts import ArtifactRef, resolve_artifact, runtimes_for
from isodeploy.benchmarking.envinfo import collect_env, describe_machine, usable_cores
from isodeploy.benchmarking.loadwatch import LoadWatch
from isodeploy.benchmarking.progress import SilentReporter
from isodeploy.benchmarking.protocol import Protocol, make_protocol
from isodeploy.benchmarking.report import BenchReport, BenchResult, LatencyStats
from isodeploy.benchmarking.schedule import TimingOutcome, run_adaptive, run_fixed
from isodeploy.core.errors import IsodeployError

DEFAULT_BATCH = {"cpu": 8, "cuda": 256}  # the paper's protocol: GPU batch 256, CPU batch 8


@dataclass
class BenchSettings:
    """What to measure and how; ``None`` fields take the protocol defaults in :meth:`resolved`."""

    runtimes: tuple[str, ...] = ("torch",)
    device: str | None = None  # None → cuda when trt is asked for, else cpu
    batch: int | None = None  # None → 256 on cuda, 8 on cpu
    warmup: int | None = None  # step counts: giving either one means the fixed protocol
    iters: int | None = None
    threads: int | None = None  # None → every usable core
    weights: str = "pretrained"
    img_size: int | None = None
    memory: bool = True
    precision: str = "fp32"  # torch on cuda may use fp16; engines carry their own precision
    rounds: int = 10  # the timed steps are split into this many interleaved rounds
    memory_repeats: int = 1  # fresh-process memory probes per runner (>1 gives memory ratios a spread)
    compile: bool = False  # torch.compile the torch runner (compiled during warm-up)
    protocol: str | None = None  # adaptive | paper | fixed; None → fixed when warmup/iters are given, else adaptive
    budget_s: float | None = None  # adaptive: seconds for warm-up + timed rounds
    target: float | None = None  # adaptive: stop when every headline interval is within ±target

    def plan(self) -> Protocol:
        """The measuring protocol these settings ask for (raises on conflicting options)."""
        return make_protocol(self.protocol, warmup=self.warmup, iters=self.iters, budget_s=self.budget_s, target=self.target)

    def resolved(self) -> "BenchSettings":
        runtimes = tuple(dict.fromkeys(self.runtimes)) or ("torch",)
        device = self.device or ("cuda" if "trt" in runtimes else "cpu")
        if device not in DEFAULT_BATCH:
            raise IsodeployError(f"unknown device '{device}': use --device cpu or --device cuda")
        if "trt" in runtimes and device != "cuda":
            raise IsodeployError("--runtime trt runs TensorRT engines on the GPU: use --device cuda (or drop --device)")
        batch = self.batch if self.batch is not None else DEFAULT_BATCH[device]
        threads = self.threads if self.threads is not None else usable_cores()
        if batch < 1 or threads < 1:
            raise IsodeployError(f"need --batch ≥ 1 and --threads ≥ 1 (got {batch}, {threads})")
        plan = self.plan()
        counted = not plan.adaptive
        if self.precision not in ("fp32", "fp16"):
            raise IsodeployError(f"unknown precision '{self.precision}': use fp32 or fp16")
        if self.precision == "fp16" and "torch" in runtimes and device != "cuda":
            raise IsodeployError("--precision fp16 with the torch runtime needs --device cuda (CPU kernels for fp16 are not representative)")
        if self.rounds < 1 or self.memory_repeats < 1:
            raise IsodeployError(f"need rounds ≥ 1 and memory repeats ≥ 1 (got {self.rounds}, {self.memory_repeats})")
        return replace(self, runtimes=runtimes, device=device, batch=batch, threads=threads, protocol=plan.name,
                       warmup=plan.warmup if counted else None, iters=plan.iters if counted else None,
                       budget_s=plan.budget_s if plan.adaptive else None, target=plan.target if plan.adaptive else None,
                       rounds=self.rounds if plan.name == "fixed" else plan.rounds)


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


@dataclass(eq=False)  # entries are compared and hashed by identity in the timing loop
class _Entry:
    """One artifact on one runtime, ready to time."""

    ref: ArtifactRef
    runtime: str
    runner: Any
    timed: Any
    macs: tuple[int | None, int | None]
    probe: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    rounds: list[list[float]] = field(default_factory=list)
    precision: str = ""
    input_shape: list[int] = field(default_factory=list)
    timing: str = ""
    round_ids: list[int] = field(default_factory=list)  # which interleaved round each of ``rounds`` was
    warmup_steps: int = 0

    def release(self) -> None:
        if self.timed is not None:
            self.precision, self.input_shape, self.timing = self.timed.precision, list(self.timed.input_shape), self.timed.timing
            self.timed.close()
        self.runner = self.timed = None


class _Bench:
    """State of one run: settings, progress display, scratch folder for on-the-fly exports."""

    def __init__(self, settings: BenchSettings, progress: Any, workdir: Path) -> None:
        self.s = settings
        self.progress = progress or SilentReporter()
        self.workdir = workdir
        self.outcome: TimingOutcome | None = None

    def stage(self, text: str) -> Any:
        """A one-step progress line for work that is not a timing loop (loading, exporting, probing)."""
        return self.progress.stage(text)

    def load(self, ref: ArtifactRef, given: Any) -> Any:
        if given is not None:
            return given
        if ref.kind not in ("model", "folder"):
            return None
        from isodeploy.loading import load_model

        with self.stage(f"loading {ref.label}"):
            return load_model(ref.query, weights=self.s.weights, img_size=self.s.img_size)

    def macs(self, ref: ArtifactRef, loaded: Any, notes: list[str]) -> tuple[int | None, int | None]:
        from isodeploy.benchmarking.macs import count_macs

        try:
            with self.stage(f"counting MACs of {ref.label}"):
                if loaded is None:
                    if not ref.source_model:
                        notes.append(f"{ref.label}: no MACs (the {ref.kind} does not name the model it came from)")
                        return None, None
                    from isodeploy.loading import load_model

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
            from isodeploy.export.trt.build import build_engine

            out = self.workdir / f"{_safe(ref.label)}.plan"
            batch = self.s.batch or 1
            with self.stage(f"building a TensorRT engine for {ref.label} (profile opt = max = batch {batch})"):
                build_engine(onnx_path, out, precision="fp16", min_batch=1, opt_batch=batch, max_batch=batch)
            cache["plan"] = out
        return cache["plan"]

    def entry(self, ref: ArtifactRef, runtime: str, loaded: Any, cache: dict[str, Path], macs: tuple[int | None, int | None]) -> _Entry:
        s = self.s
        device, batch = s.device or "cpu", s.batch or 1
        with self.stage(f"preparing {ref.label} on {runtime}/{device}"):
            if runtime == "torch":
                runner = backends.torch_runner(loaded, device=device, threads=s.threads, precision=s.precision, compile=s.compile, label=ref.label)
                probe = memory.probe_spec("torch", device=device, batch=batch, threads=s.threads, loaded=loaded, precision=s.precision, compile=s.compile)
            elif runtime == "ort":
                path = self.onnx_for(ref, loaded, cache)
                runner = backends.ort_runner(path, device=device, threads=s.threads)
                probe = memory.probe_spec("ort", device=device, batch=batch, threads=s.threads, onnx=path, img_size=s.img_size)
            else:
                plan = self.plan_for(ref, loaded, cache)
                runner = backends.trt_runner(plan)
                probe = memory.probe_spec("trt", device=device, batch=batch, threads=s.threads, plan=plan, img_size=s.img_size)
            timed = runner.timed_step(batch, s.img_size)
        return _Entry(ref, runtime, runner, timed, macs, probe, notes=list(timed.notes))

    def time_all(self, entries: list[_Entry]) -> TimingOutcome:
        """The protocol's timing loop over every entry; the outcome says how and why it stopped."""
        plan = replace(self.s.plan(), rounds=self.s.rounds)
        if plan.adaptive:
            pairs, singles = headline_pairs(entries)
            self.outcome = run_adaptive(entries, plan, pairs, singles, reporter=self.progress)
        else:
            self.outcome = run_fixed(entries, plan, reporter=self.progress)
        return self.outcome

    def memory(self, e: _Entry) -> Any:
        if not self.s.memory:
            return None
        with self.stage(f"peak memory of {e.ref.label} on {e.runtime} (fresh process)"):
            figure, why = memory.measure_peak(e.probe, repeats=self.s.memory_repeats)
        if why:
            e.notes.append(f"{e.ref.label}/{e.runtime}: {why}")
        return figure

    def result(self, e: _Entry, mem: Any) -> BenchResult:
        s = self.s
        samples = [x for r in e.rounds for x in r]
        return BenchResult(
            artifact=e.ref.query, label=e.ref.label, kind=e.ref.kind, pruned=e.ref.pruned, runtime=e.runtime, device=s.device or "cpu",
            precision=e.precision, batch=s.batch or 1, threads=s.threads, input_shape=e.input_shape,
            latency=LatencyStats.from_samples(samples, s.batch or 1, e.rounds, e.round_ids), memory=mem, macs=e.macs[0], params=e.macs[1],
            timing=e.timing, notes=e.notes, role=e.ref.role, compiled=bool(s.compile and e.runtime == "torch"),
            warmup_steps=e.warmup_steps,
        )


#: the denominator a pruned artifact is judged against, in order of preference: the comparison at equal MACs first
HEADLINE_DENOMINATORS = ("uniform-twin", "dense", "standard")


def headline_pairs(entries: Sequence[_Entry]) -> tuple[list[tuple[_Entry, _Entry]], list[_Entry]]:
    """The ratios the adaptive loop must make precise, per runtime: pruned ÷ its best comparison when roles
    say what each artifact is, else each artifact ÷ the first; a lone artifact's own latency otherwise."""
    groups: dict[str, list[_Entry]] = {}
    for e in entries:
        groups.setdefault(e.runtime, []).append(e)
    pairs: list[tuple[_Entry, _Entry]] = []
    singles: list[_Entry] = []
    for members in groups.values():
        by_role = {e.ref.role: e for e in members if e.ref.role}
        den = next((by_role[r] for r in HEADLINE_DENOMINATORS if r in by_role), None)
        if "pruned" in by_role and den is not None:
            pairs.append((by_role["pruned"], den))
        elif len(members) > 1:
            pairs += [(e, members[0]) for e in members[1:]]
        else:
            singles += members
    return pairs, singles


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def run_bench(items: Sequence[Any], settings: BenchSettings, *, progress: Callable[[], Any] | None = None,
              workdir: Path | None = None, roles: Sequence[str] | None = None,
              known_macs: dict[str, tuple[int | None, int | None]] | None = None) -> BenchReport:
    """Benchmark ``items`` (ARTIFACT strings or :class:`~isodeploy.zoo.LoadedModel` objects).

    ``progress`` makes a reporter (:func:`isodeploy.benchmarking.progress.make_reporter`; None for silence); it
    starts only after every input check, so bad input fails with one line and no half-drawn display. ``roles`` (parallel to
    ``items``: dense, pruned, uniform-twin, standard) selects the ratios the report carries;
    ``known_macs`` maps an item (or label) to (MACs, params) already counted. Raises
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
    if roles is not None:
        if len(roles) != len(pairs):
            raise IsodeployError(f"run_bench got {len(roles)} roles for {len(pairs)} artifacts")
        for (ref, _), role in zip(pairs, roles):
            ref.role = role
    for ref, _ in pairs:
        runtimes_for(ref, settings.runtimes)
    check_environment(settings, [ref for ref, _ in pairs])
    env = collect_env(settings.device or "cpu")
    results: list[BenchResult] = []
    notes: list[str] = []
    known = known_macs or {}
    # the PID in the name lets a later run remove the folder of a killed one
    with tempfile.TemporaryDirectory(prefix=f"isodeploy-bench-{os.getpid()}-", dir=workdir) as tmp, (progress() if progress else nullcontext()) as bar:
        bench = _Bench(settings, bar, Path(tmp))
        entries: list[_Entry] = []
        try:
            for (ref, given), item in zip(pairs, items):
                loaded = bench.load(ref, given)
                macs = (known.get(str(item)) if isinstance(item, (str, Path)) else None) or known.get(ref.query) or known.get(ref.label) \
                    or bench.macs(ref, loaded, notes)
                cache: dict[str, Path] = {}
                for runtime in runtimes_for(ref, settings.runtimes):
                    entries.append(bench.entry(ref, runtime, loaded, cache, macs))
                del loaded
                gc.collect()
            watch = LoadWatch()
            outcome = bench.time_all(entries)
            load = watch.stop()
        finally:
            for e in entries:  # free every runner before the memory probes: they run beside this process
                e.release()
            gc.collect()
            if settings.device == "cuda":
                import torch

                torch.cuda.empty_cache()
        for e in entries:
            results.append(bench.result(e, bench.memory(e)))
    if settings.device == "cpu":
        notes.append(f"CPU figures are relative: measured on {describe_machine(env)} with {settings.threads} threads; compare artifacts within one run, not across machines")
    noisy = [f"{r.label}/{r.runtime}" for r in results if r.latency.noisy]
    if noisy:
        notes.append(f"step-to-step CV over 5 % for {', '.join(noisy)}: the intervals of the ratios account for it")
    if load.busy:
        notes.append(f"the machine was busy while timing ({load.describe()}): intervals are wider; re-run on an idle machine for tighter ones")
    from isodeploy.benchmarking.ratios import as_dicts, compute_ratios

    methods = {r.memory.method_id for r in results if r.memory}
    if len(methods) > 1:
        notes.append(f"memory figures come from different methods ({', '.join(sorted(methods))}): compare within one method only")
    return BenchReport(
        results=results, env=env, settings=_settings_dict(settings), notes=notes,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), ratios=as_dicts(compute_ratios(results)),
        protocol=protocol_record(settings, outcome, results), load=load.to_dict(),
    )


def protocol_record(settings: BenchSettings, outcome: TimingOutcome, results: Sequence[BenchResult]) -> dict[str, Any]:
    """What the report says about how it measured: the plan, why it stopped, and the steps each artifact got."""
    plan = replace(settings.plan(), rounds=settings.rounds)
    steps = [{"artifact": r.label, "role": r.role, "runtime": r.variant, "device": r.device, "warmup": r.warmup_steps,
              "timed": r.latency.iters, "rounds": len(r.latency.rounds_ms)} for r in results]
    return {**plan.to_dict(), "description": plan.describe(), "stop": outcome.to_dict(), "steps": steps}


def _settings_dict(settings: BenchSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["runtimes"] = list(settings.runtimes)
    return data
