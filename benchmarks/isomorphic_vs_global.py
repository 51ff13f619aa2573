"""Does isomorphic ranking pay off? Isomorphic vs global vs local ranking at equal MACs, on a real task.

A small-scale reproduction of the paper's claim (Fang et al., ECCV 2024): a small DeiT and a small
ResNet-18-D are trained on scikit-learn's digits (upsampled to 32×32), pruned to the same MAC budgets
with ``--ranking isomorphic|global|local`` × ``--importance magnitude|taylor`` (``target_macs``, so
every pruned model lands within 1 % of the budget), fine-tuned with ``isodeploy finetune``
(distillation from the dense model, identical recipe and steps for all), and compared with a
uniformly narrower model of the same MACs trained from scratch for as many steps as the pruned models
saw in total (pretraining + fine-tuning). Three seeds (each trains its own dense model). Also draws
the per-class importance histograms of the trained dense models (the paper's figure).

    python benchmarks/isomorphic_vs_global.py            # full: 15–20 min on 2 CPU cores
    python benchmarks/isomorphic_vs_global.py --quick    # 1 seed, short schedules: 2.5–4 min

Writes ``benchmarks/results/isomorphic_vs_global[_quick].{json,md}``, ``…_accuracy.png`` and
``…_importance.png``; prints the tables as Markdown (docs/evidence.md quotes them verbatim).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evidence.config import IMPORTANCES, MODELS, RANKINGS, Settings, quick  # noqa: E402
from evidence.tasks import Job, Paths, init_worker, run_job  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STEM = "isomorphic_vs_global"


class BadInput(Exception):
    """One line for the user; the script exits 2."""


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 seed, 12 dense epochs, 1 fine-tuning epoch (a smoke run)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 3; --quick 1)")
    p.add_argument("--budgets", type=float, nargs="+", help="fractions of the dense MACs to keep (default 0.7 0.5)")
    p.add_argument("--models", nargs="+", help=f"subset of {', '.join(MODELS)}")
    p.add_argument("--dense-epochs", type=int)
    p.add_argument("--finetune-epochs", type=int)
    p.add_argument("--jobs", type=int, help="worker processes (default 2)")
    p.add_argument("--threads", type=int, help="torch threads per worker (default 1)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON, Markdown and PNGs")
    p.add_argument("--json", type=Path, help="also write the JSON result here")
    p.add_argument("--workdir", type=Path, help="keep datasets and models here (default: a temp folder, deleted)")
    p.add_argument("--keep-runs", action="store_true", help="keep every pruned and fine-tuned model in --workdir")
    a = p.parse_args(argv)
    s = quick(Settings()) if a.quick else Settings()
    if a.seeds is not None:
        if not 1 <= a.seeds <= 20:
            raise BadInput(f"--seeds must be in 1..20; got {a.seeds}")
        s = replace(s, seeds=list(range(a.seeds)))
    if a.budgets:
        if not all(0.05 <= b < 1.0 for b in a.budgets):
            raise BadInput(f"--budgets are fractions of the dense MACs in [0.05, 1); got {a.budgets}")
        s = replace(s, budgets=sorted(set(a.budgets), reverse=True))
    if a.models:
        unknown = [m for m in a.models if m not in MODELS]
        if unknown:
            raise BadInput(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
        s = replace(s, models=[m for m in MODELS if m in a.models])
    for name in ("dense_epochs", "finetune_epochs", "jobs", "threads"):
        value = getattr(a, name)
        if value is not None:
            if value < 1:
                raise BadInput(f"--{name.replace('_', '-')} must be ≥ 1; got {value}")
            s = replace(s, **{name: value})
    if a.out.exists() and not a.out.is_dir():
        raise BadInput(f"--out {a.out} is a file; give a folder")
    return a, s


def machine() -> dict[str, object]:
    from isodeploy.benchmarking.envinfo import cpu_model, library_versions, usable_cores

    return {"cpu": cpu_model(), "cores": usable_cores(), "python": platform.python_version(), "libraries": library_versions()}


def plan_jobs(s: Settings) -> tuple[list[Job], dict[tuple[str, int], list[Job]]]:
    """Dense jobs first (they unlock the pruning jobs); pruning jobs wait for their seed's dense model."""
    dense = [Job("dense", m, seed) for seed in s.seeds for m in s.models]
    follow = {(m, seed): [Job("prune", m, seed, b, r, i) for b in s.budgets for r in s.rankings for i in s.importances]
              for seed in s.seeds for m in s.models}
    return dense, follow


def uniform_widths(s: Settings) -> dict[str, dict[float, dict]]:
    """timm kwargs of the uniform baseline for every model and budget (exact MAC counts, no training)."""
    from evidence.models import SETUPS, macs_of, uniform_kwargs

    out: dict[str, dict[float, dict]] = {}
    for m in s.models:
        dense_macs = macs_of(SETUPS[m])
        out[m] = {b: uniform_kwargs(SETUPS[m], b * dense_macs) for b in s.budgets}
    return out


def run_all(s: Settings, paths: Paths, keep: bool) -> list[dict]:
    """Every job on a pool of ``s.jobs`` processes, with a progress bar; rows also go to WORK/rows.jsonl."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    dense, follow = plan_jobs(s)
    total = len(dense) + sum(len(v) for v in follow.values()) + len(s.models) * len(s.budgets) * len(s.seeds)
    rows: list[dict] = []
    context = multiprocessing.get_context("spawn")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with open(Path(paths.work) / "rows.jsonl", "a") as log, \
            ProcessPoolExecutor(s.jobs, mp_context=context, initializer=init_worker, initargs=(s.threads,)) as pool, \
            Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("training the dense models", total=total)
        pending: dict[Future, Job] = {pool.submit(run_job, j, s, paths, keep): j for j in dense}
        bar.update(task, description="dense models training; sizing the uniform baselines")
        for m, per_budget in uniform_widths(s).items():
            for b, kwargs in per_budget.items():
                for seed in s.seeds:
                    job = Job("scratch", m, seed, b, scratch_kwargs=tuple(sorted(kwargs.items())))
                    pending[pool.submit(run_job, job, s, paths, keep)] = job
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    row = future.result()
                except Exception as exc:  # a failed job stops the run: a partial table would mislead
                    for f in pending:
                        f.cancel()
                    raise RuntimeError(f"job {job.id} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                if job.kind == "dense":
                    for nxt in follow[(job.model, job.seed)]:
                        pending[pool.submit(run_job, nxt, s, paths, keep)] = nxt
                top1 = row.get("finetuned_top1", row.get("val_top1"))
                bar.update(task, advance=1, description=f"{job.id}: top-1 {top1:.1f} % ({row['seconds']:.0f} s)")
    return rows


def importance_figure(s: Settings, paths: Paths, out_png: Path) -> dict[str, list[dict]]:
    """Histograms of the seed-0 dense models' importance per isomorphic class (the paper's figure)."""
    import torch

    from evidence.histograms import importance_by_class, plot, summary
    from evidence.models import IMG_SIZE, SETUPS
    from isodeploy.loading import load_model

    torch.set_num_threads(max(1, s.jobs * s.threads))
    panels, stats = {}, {}
    for m in s.models:
        setup = SETUPS[m]
        loaded = load_model(setup.timm_name, weights=str(paths.dense_weights(m, s.seeds[0])), img_size=IMG_SIZE, **setup.create_kwargs())
        panels[m] = importance_by_class(loaded, paths.train, s.calib_batches)
        stats[m] = summary(panels[m])
    plot(panels, {m: SETUPS[m].label for m in s.models}, out_png)
    return stats


def rounded(value, digits: int = 4):
    """Floats rounded for a commit-sized JSON (accuracies are multiples of 1/450; 4 decimals lose nothing)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def dumps_result(payload: dict) -> str:
    """JSON with one line per job row: readable, diffable and a third of the size of fully indented JSON."""
    head = json.dumps({k: v for k, v in payload.items() if k != "rows"}, indent=1, ensure_ascii=False)
    rows = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in payload["rows"])
    return head[:-2] + ',\n "rows": [\n' + rows + "\n ]\n}\n"


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    try:
        args, s = parse(argv)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import importlib.util
    import warnings

    if importlib.util.find_spec("sklearn") is None:
        print("error: the benchmark's data set comes with scikit-learn; install it with pip install -e \".[dev]\"", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    from evidence.data import write_digits
    from evidence.models import SETUPS
    from evidence.report import accuracy_table, aggregate, importance_table, plot_accuracy, width_table

    started = time.perf_counter()
    when = dt.datetime.now().astimezone()
    stem = STEM + ("_quick" if args.quick else "")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="isodeploy-evidence-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        digits = write_digits(work / "data")
        paths = Paths(str(work), digits.train, digits.val)
        rows = run_all(s, paths, args.keep_runs)
        tmp_png = args.out / f".{stem}_importance.png.tmp.png"
        args.out.mkdir(parents=True, exist_ok=True)
        stats = importance_figure(s, paths, tmp_png)
        os.replace(tmp_png, args.out / f"{stem}_importance.png")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    labels = {m: SETUPS[m].label for m in s.models}
    cells, dense = aggregate(rows)
    legends = {m: ", ".join(f"{r['class']} = {r['name'].split(': ', 1)[1]}" for r in stats[m]) for m in s.models}
    wall = time.perf_counter() - started
    info = machine()
    header = (f"digits 32×32 (scikit-learn; {digits.train_images} train / {digits.val_images} val) · "
              f"{len(s.seeds)} seed(s), mean ± std · dense {s.dense_epochs} ep, fine-tune {s.finetune_epochs} ep "
              f"(KD), uniform from scratch {s.scratch_epochs} ep · {when:%Y-%m-%d} · {info['cpu']}, {info['cores']} cores, "
              f"{s.jobs}×{s.threads} thread(s) · wall {wall / 60:.1f} min")
    tables = [header, "", accuracy_table(cells, dense, s, labels), "", width_table(cells, s, legends, labels), "",
              "Importance per isomorphic class (seed-0 dense models; log10 of the raw score)", "",
              importance_table(stats, labels)]
    text = "\n".join(tables)
    print(text)
    write_text_atomic(args.out / f"{stem}.md", text + "\n")
    plot_accuracy(cells, dense, s, labels, args.out / f".{stem}_accuracy.png.tmp.png")
    os.replace(args.out / f".{stem}_accuracy.png.tmp.png", args.out / f"{stem}_accuracy.png")
    payload = {"date": when.isoformat(timespec="seconds"), "wall_seconds": round(wall, 1), "machine": info,
               "settings": asdict(s), "dataset": asdict(digits) | {"name": "sklearn.datasets.load_digits, 8×8 → 32×32 bilinear"},
               "models": {m: asdict(SETUPS[m]) for m in s.models},
               "summary": [asdict(c) for c in cells] + [asdict(c) for c in dense.values()],
               "importance": stats, "rows": rows}
    for path in filter(None, (args.out / f"{stem}.json", args.json)):
        write_text_atomic(path, dumps_result(rounded(payload)))
    print(f"\nwrote {args.out / stem}.{{json,md}}, {stem}_accuracy.png, {stem}_importance.png in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
