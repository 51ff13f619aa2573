"""The public comparison API (what ``isodeploy compare`` runs): several models side by side — MACs,
params, latency per runtime/device, peak memory, accuracy — pruned models against their uniform twins.

Same defaults and one-line errors as the command (the bench options are
:func:`isodeploy.api.benchmark.bench_settings`'s). Re-exported as they are, because they already are
the right public functions: :func:`~isodeploy.benchmarking.compare.parse_accuracy` (``NAME=TOP1``
strings → a dict), :func:`~isodeploy.benchmarking.plot.plot_latency_vs_macs` (the plot),
:func:`~isodeploy.benchmarking.compare.compare_table` (the rich table the command prints),
:func:`~isodeploy.benchmarking.compare.footnotes` as ``compare_notes``, and ``PLOT_FORMATS``
(the plot file suffixes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from isodeploy.benchmarking.compare import CompareReport, compare_table, parse_accuracy
from isodeploy.benchmarking.compare import footnotes as compare_notes
from isodeploy.benchmarking.plot import FORMATS as PLOT_FORMATS
from isodeploy.benchmarking.plot import plot_latency_vs_macs
from isodeploy.benchmarking.suite import BenchSettings
from isodeploy.core.api_args import check_arg
from isodeploy.core.errors import IsodeployError

__all__ = ["PLOT_FORMATS", "compare", "compare_markdown", "compare_notes", "compare_table", "parse_accuracy", "plot_latency_vs_macs",
           "uniform_twins", "write_compare_files"]


def _is_saved(artifact: Any) -> bool:
    return str(artifact).lower().endswith(".json")


def compare(artifacts: Sequence[str | Path], *, runtimes: Sequence[str] | str = ("torch",), device: str | None = None,
            batch: int | None = None, protocol: str | None = None, budget: float | None = None, warmup: int | None = None,
            iters: int | None = None, threads: int | None = None, weights: str = "pretrained", img_size: int | None = None,
            memory: bool = True, precision: str = "fp32", memory_repeats: int = 1, compile: bool = False,
            accuracy: Mapping[str, float] | Sequence[str] | None = None, uniform_twin: bool = False,
            progress: Callable[[], Any] | bool | None = None) -> CompareReport:
    """One comparison of ``artifacts`` (models, folders, ``.onnx``/``.plan`` files, or saved
    ``bench --json`` reports); the first is the reference for speed-ups and MAC reductions.

    Saved reports are read and checked before anything is measured; the rest are benchmarked together
    (one interleaved run, the options and defaults of :func:`isodeploy.api.benchmark.bench`).
    ``uniform_twin``: also build and bench, for every pruned isodeploy folder, its uniform twin (same
    depth, every class cut by one ratio, the same MACs ±1 %). ``accuracy``: ``{"name": top1}`` or
    ``["name=top1", …]`` as ``--accuracy``. Returns a :class:`~isodeploy.benchmarking.compare.CompareReport`;
    :func:`write_compare_files` writes its JSON, Markdown and plot.
    """
    from isodeploy.api.benchmark import _progress, bench_settings
    from isodeploy.benchmarking.compare import build_compare, merge_reports
    from isodeploy.benchmarking.report import load_report
    from isodeploy.benchmarking.suite import run_bench

    check_arg("artifacts", artifacts, "list", hint=" of model names, folders, .onnx/.plan paths or saved bench .json reports")
    check_arg("uniform_twin", uniform_twin, "bool")
    artifacts = [str(a) for a in artifacts]
    acc = dict(accuracy) if isinstance(accuracy, Mapping) else parse_accuracy(list(accuracy or []))
    saved = [a for a in artifacts if _is_saved(a)]
    fresh = [a for a in artifacts if not _is_saved(a)]
    reports = {a: load_report(Path(a)) for a in saved}  # validate saved reports before measuring anything
    if fresh:
        import os
        import tempfile

        settings = bench_settings(runtimes, device=device, batch=batch, protocol=protocol, budget=budget, warmup=warmup, iters=iters,
                                  threads=threads, weights=weights, img_size=img_size, memory=memory, precision=precision,
                                  memory_repeats=memory_repeats, compile=compile)
        with tempfile.TemporaryDirectory(prefix=f"isodeploy-bench-{os.getpid()}-twins-") as tmp:
            items, roles = uniform_twins(fresh, Path(tmp), settings) if uniform_twin else (fresh, None)
            reports["__fresh__"] = run_bench(items, settings, progress=_progress(progress), roles=roles)
    ordered = [reports[a] if _is_saved(a) else reports["__fresh__"] for a in artifacts]
    ordered = list({id(r): r for r in ordered}.values())
    return build_compare(merge_reports(ordered), acc)


def uniform_twins(artifacts: Sequence[str], folder: Path, settings: BenchSettings) -> tuple[list[str], list[str]]:
    """The artifacts plus one uniform twin per pruned folder (written under ``folder``), and each one's
    role (pruned, uniform-twin, dense — the model a folder was pruned from — standard, or "" for files)."""
    from isodeploy.benchmarking.artifacts import resolve_artifact
    from isodeploy.benchmarking.twin import dense_of_folder, make_twin
    from isodeploy.loading import resolve
    from isodeploy.pruning.spec import write_folder

    refs = [resolve_artifact(a, settings.img_size) for a in artifacts]
    sources: dict[str, str] = {}
    items, kinds = list(artifacts), [ref.kind for ref in refs]
    for a, ref in zip(artifacts, refs):
        if ref.kind != "folder":
            continue
        dense, spec = dense_of_folder(Path(a))  # any source kind; one line when it cannot be rebuilt
        sources[dense.timm_name] = a
        result, _ = make_twin(dense, int(spec["macs"]["after"]))
        out = write_folder(Path(folder) / f"{Path(a).resolve().name}-uniform-twin", result.loaded.model, result.spec)
        items.append(str(out))  # twins go after every given artifact: the first one stays the reference
        kinds.append("uniform-twin")
    if not sources:
        raise IsodeployError("--uniform-twin needs at least one pruned isodeploy folder among the artifacts")
    roles = []
    for a, kind in zip(items, kinds):
        if kind in ("onnx", "plan"):
            roles.append("")
        elif kind != "model":
            roles.append("pruned" if kind == "folder" else kind)
        else:
            roles.append("dense" if resolve(a).timm_name in sources else "standard")
    return items, roles


def compare_markdown(report: CompareReport, plot: str | Path | None = None, md_path: str | Path | None = None) -> str:
    """The ``compare --md`` document; with ``plot``, it links the plot relative to ``md_path``'s folder."""
    import os

    from isodeploy.benchmarking.compare import compare_markdown as _markdown

    text = _markdown(report)
    if plot:
        text += f"\n![latency vs MACs]({os.path.relpath(plot, Path(md_path).parent if md_path else Path.cwd())})\n"
    return text


def write_compare_files(report: CompareReport, *, json_path: str | Path | None = None, md_path: str | Path | None = None,
                        plot: str | Path | None = None) -> None:
    """Write ``compare --json`` / ``--md`` atomically; ``--md`` links ``plot`` when one was drawn
    (draw it first with :func:`plot_latency_vs_macs`, as the command does)."""
    from isodeploy.benchmarking.report import write_text_atomic
    from isodeploy.core.safe_write import write_json_atomic

    if json_path:
        write_json_atomic(Path(json_path), report.to_dict())
    if md_path:
        write_text_atomic(Path(md_path), compare_markdown(report, plot, md_path))
