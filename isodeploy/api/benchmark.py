"""The public benchmarking API (what ``isodeploy bench`` runs): latency, memory and MACs of artifacts,
the CI regression gate against a saved baseline, and the report files.

Defaults are the command line's: the adaptive protocol unless ``warmup``/``iters`` (or ``protocol``)
say otherwise, batch 8 on CPU / 256 on CUDA, every usable core. Errors are the command's one-line
:class:`~isodeploy.core.errors.IsodeployError` messages and exit codes (a regression is
``ExitCode.NUMERIC``). ``isodeploy compare`` lives in :mod:`isodeploy.api.comparison`.

Re-exported as they are, because they already are the right public functions:
:func:`~isodeploy.benchmarking.gate.parse_regression` (``"10%"`` → 0.1),
:func:`~isodeploy.benchmarking.progress.make_reporter` as ``progress_reporter`` (progress on stderr),
and the rich tables the command prints: ``bench_table`` (:func:`~isodeploy.benchmarking.report.rich_table`),
:func:`~isodeploy.benchmarking.ratios.ratio_table` and :func:`~isodeploy.benchmarking.gate.gate_table`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from isodeploy.benchmarking.gate import GateResult, gate_table, parse_regression
from isodeploy.benchmarking.progress import make_reporter as progress_reporter
from isodeploy.benchmarking.ratios import ratio_table
from isodeploy.benchmarking.report import BenchReport
from isodeploy.benchmarking.report import rich_table as bench_table
from isodeploy.benchmarking.suite import BenchSettings
from isodeploy.core.api_args import check_arg
from isodeploy.core.errors import ExitCode, IsodeployError

__all__ = ["bench", "bench_gate", "bench_markdown", "bench_notes", "bench_payload", "bench_settings", "bench_table", "check_baseline_keys",
           "gate_table", "load_baseline", "parse_regression", "progress_reporter", "ratio_table", "regression_error", "split_runtimes",
           "write_bench_files"]


def split_runtimes(values: Sequence[str] | str) -> tuple[str, ...]:
    """``["torch,ort", "trt"]`` → ``("torch", "ort", "trt")``: each item may comma-separate several, as ``-r`` does."""
    if isinstance(values, str):
        values = [values]
    return tuple(v.strip() for item in values for v in str(item).split(",") if v.strip())


def bench_settings(runtimes: Sequence[str] | str = ("torch",), *, device: str | None = None, batch: int | None = None,
                   protocol: str | None = None, budget: float | None = None, warmup: int | None = None, iters: int | None = None,
                   threads: int | None = None, weights: str = "pretrained", img_size: int | None = None, memory: bool = True,
                   precision: str = "fp32", memory_repeats: int = 1, compile: bool = False) -> BenchSettings:
    """The resolved :class:`~isodeploy.benchmarking.suite.BenchSettings` ``bench``/``compare`` measure with.

    Checked here, before anything is loaded, so a bad option is one line up front: device (cpu | cuda;
    default cuda with the trt runtime, else cpu), batch (default 256 on cuda, 8 on cpu), threads
    (default every usable core), protocol (adaptive unless warmup/iters are given; paper = 20 + 100;
    fixed = the warmup/iters given), budget (adaptive seconds, default 120) and precision.
    """
    if not isinstance(runtimes, str):
        check_arg("runtimes", runtimes, "list")
    for name, value in (("batch", batch), ("warmup", warmup), ("iters", iters), ("threads", threads), ("img_size", img_size)):
        check_arg(name, value, "int", optional=True)  # values (≥ 1, ≥ 2 …) are checked below, in the command's words
    check_arg("memory_repeats", memory_repeats, "int")
    check_arg("memory", memory, "bool")
    check_arg("compile", compile, "bool")
    return BenchSettings(runtimes=split_runtimes(runtimes), device=device, batch=batch, warmup=warmup, iters=iters,
                         threads=threads, weights=weights, img_size=img_size, memory=memory, precision=precision,
                         memory_repeats=memory_repeats, compile=compile, protocol=protocol, budget_s=budget).resolved()


def _progress(progress: Callable[[], Any] | bool | None) -> Callable[[], Any] | None:
    return progress_reporter if progress is True else (progress or None)


def bench(artifacts: Sequence[Any], *, runtimes: Sequence[str] | str = ("torch",), device: str | None = None, batch: int | None = None,
          protocol: str | None = None, budget: float | None = None, warmup: int | None = None, iters: int | None = None,
          threads: int | None = None, weights: str = "pretrained", img_size: int | None = None, memory: bool = True,
          precision: str = "fp32", memory_repeats: int = 1, compile: bool = False,
          progress: Callable[[], Any] | bool | None = None) -> BenchReport:
    """Latency (interleaved rounds), peak memory and MACs of each artifact on each runtime, as ``isodeploy bench``.

    ``artifacts``: model names, folders, ``.onnx``/``.plan`` paths or ``nn.Module`` objects (these need
    ``_isodeploy`` metadata from :func:`isodeploy.create_model`/:func:`isodeploy.load`, or go through
    :func:`isodeploy.api.deploy.as_loaded` first). The defaults are the CLI's (see :func:`bench_settings`):
    the adaptive protocol — warm up by time, then rounds until every headline ratio's 95 % interval is
    within ±2 % or 120 s are spent — unless ``warmup``/``iters`` are given (``protocol="paper"``: 20 + 100).
    ``progress``: True for the command's progress display on stderr, a reporter factory, or None (silent).
    Returns a :class:`~isodeploy.benchmarking.report.BenchReport`.
    """
    from isodeploy.api.deploy import as_loaded
    from isodeploy.benchmarking.suite import run_bench

    check_arg("artifacts", artifacts, "list", hint=" of model names, folders, .onnx/.plan paths or modules")
    settings = bench_settings(runtimes, device=device, batch=batch, protocol=protocol, budget=budget, warmup=warmup, iters=iters,
                              threads=threads, weights=weights, img_size=img_size, memory=memory, precision=precision,
                              memory_repeats=memory_repeats, compile=compile)
    items = [a if isinstance(a, (str, Path)) else as_loaded(a) for a in artifacts]
    return run_bench(items, settings, progress=_progress(progress))


def bench_notes(report: BenchReport) -> list[str]:
    """The lines printed under the bench table: how it measured, then what to keep in mind reading it."""
    from isodeploy.benchmarking.report import measurement_notes, protocol_line

    return [f"protocol: {protocol_line(report)}"] + measurement_notes(report.results) + report.notes


def _baseline_name(path: Any) -> str:
    return f"baseline '{path}'"


def check_baseline_keys(baseline: BenchReport, artifacts: Sequence[str], settings: BenchSettings, name: str = "baseline") -> None:
    """Fail before measuring when the baseline cannot cover these artifacts on these runtimes."""
    from isodeploy.benchmarking.artifacts import resolve_artifact, runtimes_for

    have = {r.key for r in baseline.results}
    for query in artifacts:
        ref = resolve_artifact(str(query), settings.img_size)
        label = ref.label
        for runtime in runtimes_for(ref, settings.runtimes):
            if (label, runtime, settings.device) not in have:
                listed = ", ".join(sorted({f"{k[0]} ({k[1]}/{k[2]})" for k in have})) or "nothing"
                raise IsodeployError(f"{name} holds no result for {label} ({runtime}/{settings.device}); it has {listed}: re-create the baseline with the same artifacts, runtimes and device")


def load_baseline(path: str | Path, artifacts: Sequence[str] | None = None, settings: BenchSettings | None = None) -> BenchReport:
    """A saved ``bench --json`` report, checked to be usable as a gate baseline — before minutes of
    measuring: readable, not damaged, and (given the artifacts and settings about to be measured)
    holding a result for every artifact × runtime on this device."""
    from isodeploy.benchmarking.gate import validate_baseline
    from isodeploy.benchmarking.report import load_report

    base = load_report(Path(path))
    validate_baseline(base, _baseline_name(path))
    if artifacts is not None and settings is not None:
        check_baseline_keys(base, [str(a) for a in artifacts], settings, _baseline_name(path))
    return base


def regression_error(gate: GateResult) -> IsodeployError | None:
    """The one-line error (exit code 1) for a failed gate, naming the worst regression; None when it passed."""
    if not gate.failed:
        return None
    worst = max((r for r in gate.rows if r.regressed), key=lambda r: r.change)
    return IsodeployError(
        f"latency regressed: {worst.label} ({worst.runtime}/{worst.device}) p50 {worst.base_p50_ms:.2f} → {worst.new_p50_ms:.2f} ms "
        f"({worst.change * 100:+.1f} %, 95 % CI {(worst.ci_low - 1) * 100:+.1f} to {(worst.ci_high - 1) * 100:+.1f} %, "
        f"allowed +{gate.max_regression * 100:.0f} %)",
        exit_code=ExitCode.NUMERIC,
    )


def bench_gate(report: BenchReport, baseline: str | Path | BenchReport, max_regression: str | float = "10%", *,
               check: bool = True, name: str | None = None) -> GateResult:
    """The CI regression gate of ``bench --baseline``: is ``report`` slower than ``baseline`` beyond
    ``max_regression`` (``"10%"``, ``0.1``) and noise? (The rule: :mod:`isodeploy.benchmarking.gate`.)

    ``baseline``: a saved ``bench --json`` path (loaded and validated) or a loaded report. With
    ``check`` (the default) a regression raises the command's ``latency regressed: …`` error (exit
    code 1); ``check=False`` returns the :class:`~isodeploy.benchmarking.gate.GateResult` either way.
    """
    from isodeploy.benchmarking.gate import check_regression

    threshold = parse_regression(str(max_regression))  # read as the command line reads it: 0.1 and "10%" both mean +10 %
    if isinstance(baseline, BenchReport):
        base, name = baseline, name or "baseline"
    else:
        base, name = load_baseline(baseline), name or _baseline_name(baseline)
    result = check_regression(report, base, threshold, name)
    error = regression_error(result) if check else None
    if error is not None:
        raise error
    return result


def bench_payload(report: BenchReport, gate: GateResult | None = None, baseline: str | Path | None = None) -> dict[str, Any]:
    """The ``bench --json`` document: the report, plus the gate's verdict and rows when a gate ran."""
    payload = report.to_dict()
    if gate is not None:
        payload["gate"] = {"baseline": str(baseline), "max_regression": gate.max_regression, "failed": gate.failed,
                           "rows": [dict(vars(r), verdict=r.verdict) for r in gate.rows]}
    return payload


def bench_markdown(report: BenchReport, gate: GateResult | None = None) -> str:
    """The ``bench --md`` document: results, ratios and notes, plus a regression-gate section when a gate ran."""
    from isodeploy.benchmarking.gate import gate_markdown
    from isodeploy.benchmarking.markdown import to_markdown

    text = to_markdown(report)
    if gate is not None:
        text += "\n## Regression gate\n\n" + gate_markdown(gate) + "\n"
    return text


def write_bench_files(report: BenchReport, *, json_path: str | Path | None = None, md_path: str | Path | None = None,
                      gate: GateResult | None = None, baseline: str | Path | None = None) -> None:
    """Write ``bench --json`` / ``--md`` (atomically: a reader never sees half a file)."""
    from isodeploy.benchmarking.report import write_text_atomic
    from isodeploy.core.safe_write import write_json_atomic

    if json_path:
        write_json_atomic(Path(json_path), bench_payload(report, gate, baseline))
    if md_path:
        write_text_atomic(Path(md_path), bench_markdown(report, gate))
