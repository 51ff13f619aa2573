"""The GPU run of the paper's protocol: dense / pruned / uniform-twin DeiT-B at batch 256, FP32 and FP16.

    python benchmarks/gpu_protocol.py [--out benchmarks/out/gpu] [--no-compile] [--no-trt] [--dry-run]

One interleaved run (dense, pruned DeiT-4.2G, uniform twin at the same MACs) per runtime variant:
torch eager FP32 and FP16, torch.compile FP32 and FP16, onnxruntime CUDA when onnxruntime-gpu is
installed, TensorRT FP16 engines (profile opt = max = 256) when TensorRT is. 20 warm-up + 100 timed
steps in 10 rounds; peak memory in a fresh process per runner (cudaMemGetInfo). Writes
``gpu_protocol.json`` (bench schema, ratios included) and ``gpu_protocol.md``; budget: under 8 minutes on
one datacenter GPU (each phase's wall time is printed and recorded).

``--latency 0.5`` adds the latency-budget prune measured on TensorRT FP16 (a per-class table at
``--latency-grid`` steps, one engine each: about 12 engine builds for DeiT-B), recorded as ``latency_budget``.

``--dry-run`` runs the same code on the CPU with a tiny DeiT at 32 px, batch 4 and a few steps (torch
eager and onnxruntime CPU), so CI checks the script without a GPU. Random weights: latency does not
depend on weight values.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isodeploy.benchmarking.compare import merge_reports  # noqa: E402
from isodeploy.benchmarking.ratios import METRICS  # noqa: E402
from isodeploy.benchmarking.report import markdown_table, write_text_atomic  # noqa: E402
from isodeploy.benchmarking.suite import BenchSettings, run_bench  # noqa: E402

ROLES = ["dense", "pruned", "uniform-twin"]
TINY = {"img_size": 32, "patch_size": 8, "depth": 2}


def build_models(dry_run: bool, folder: Path, say) -> tuple[list, list[Path], dict]:
    """Dense DeiT-B, pruned DeiT-4.2G and its uniform twin, as loaded models and saved folders."""
    from isodeploy.benchmarking.twin import make_twin
    from isodeploy.pruning.pruner import config_from_recipe, prune_model
    from isodeploy.pruning.plan import PruneConfig
    from isodeploy.pruning.spec import load_folder, write_folder
    from isodeploy.loading import load_model

    dense = load_model("deit_tiny_patch16_224", weights="random", **TINY) if dry_run else load_model("deit_b", weights="random")
    cfg = PruneConfig(ratio=0.3) if dry_run else config_from_recipe("deit-4.2g", {})
    say(f"pruning {dense.timm_name} ({'ratio 0.3' if dry_run else 'preset deit-4.2g'})")
    pruned = prune_model(dense, cfg)
    say("building the uniform twin at the same MACs")
    twin, info = make_twin(dense, pruned.plan.macs_after)
    folders = [write_folder(folder / "pruned", pruned.loaded.model, pruned.spec, force=True),
               write_folder(folder / "uniform-twin", twin.loaded.model, twin.spec, force=True)]
    models = [dense, load_folder(folders[0]), load_folder(folders[1])]
    macs = {"dense": (pruned.plan.macs_before, pruned.plan.params_before), "pruned": (pruned.plan.macs_after, pruned.plan.params_after),
            "uniform-twin": (info.macs, info.params), "twin": info.to_dict()}
    return models, folders, macs


def export_all(models: list, folder: Path, say) -> list[str]:
    from isodeploy.export.onnx import export_onnx

    paths = []
    for model, role in zip(models, ROLES):
        say(f"exporting {role} to ONNX")
        out = folder / f"{role}.onnx"
        export_onnx(model, out)
        paths.append(str(out))
    return paths


def variants(dry_run: bool, compile_: bool, trt: bool) -> list[dict]:
    """The runs: (name, runtime, precision, compile, on models or ONNX files)."""
    if dry_run:
        return [dict(name="torch eager fp32", runtime="torch", precision="fp32", compile=False),
                dict(name="onnxruntime fp32", runtime="ort", precision="fp32", compile=False)]
    out = [dict(name="torch eager fp32", runtime="torch", precision="fp32", compile=False),
           dict(name="torch eager fp16", runtime="torch", precision="fp16", compile=False)]
    if compile_:
        out += [dict(name="torch.compile fp32", runtime="torch", precision="fp32", compile=True),
                dict(name="torch.compile fp16", runtime="torch", precision="fp16", compile=True)]
    try:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            out.append(dict(name="onnxruntime CUDA fp32", runtime="ort", precision="fp32", compile=False))
    except ImportError:
        pass
    from isodeploy.runtime.trt.env import tensorrt_available

    if trt and tensorrt_available() is None:
        out.append(dict(name="TensorRT fp16", runtime="trt", precision="fp32", compile=False))
    return out


def markdown(report, phases: dict[str, float], machine: str, dry_run: bool) -> str:
    header = ["run", "model", "MACs", "p50 ms (batch)", "img/s", "ms / GMAC", "memory MB", "CV"]
    rows = []
    for r in report.results:
        ms_gmac = r.latency.p50_ms / (r.macs / 1e9) if r.macs else None
        mem = r.memory.delta_mb if r.memory and r.memory.delta_mb is not None else None
        rows.append([f"{r.variant}/{r.device}", r.role, f"{(r.macs or 0) / 1e9:.2f} G", f"{r.latency.p50_ms:.2f} ({r.batch})",
                     f"{r.latency.throughput_ips:.0f}", "-" if ms_gmac is None else f"{ms_gmac:.3f}", "-" if mem is None else f"{mem:.0f}",
                     f"{r.latency.cv:.1%}"])
    ratio_rows = [[f"{x['numerator_role']} ÷ {x['denominator_role']}", f"{x['variant']}/{x['device']}", METRICS.get(x["metric"], x["metric"]),
                   f"{x['median']:.3f}×", f"{x['low']:.3f}–{x['high']:.3f}", f"{x['q1']:.3f}–{x['q3']:.3f}"] for x in report.ratios]
    s = report.settings
    lines = [f"# GPU protocol{' (dry run on CPU: tiny model, not a measurement)' if dry_run else ''}", "",
             f"Machine: {machine}. Batch {s.get('batch')}, {s.get('warmup')} warm-up + {s.get('iters')} timed steps in "
             f"{s.get('rounds')} interleaved rounds per run; memory: device memory in use in a fresh process (cudaMemGetInfo), CPU: peak RSS.", "",
             markdown_table(header, rows), "", "Ratios (median of per-round ratios, min–max, IQR):", "",
             markdown_table(["ratio", "run", "metric", "median", "min–max", "IQR"], ratio_rows), "",
             "Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()) + "."]
    return "\n".join(lines) + "\n"


def latency_phase(dry_run: bool, budget: str, grid: tuple[float, ...], say) -> dict:
    """Prune DeiT-B to ``budget`` measured on TensorRT FP16 at batch 256 (per-class table: one engine per
    class and grid step, opt = max = 256), then time the result; ``--dry-run``: a tiny DeiT on onnxruntime CPU."""
    import torch
    from isodeploy.api import create_model, example_inputs, latency_settings, prune

    torch.manual_seed(0)
    if dry_run:
        model = create_model("deit_tiny_patch16_224", weights="random", **TINY)
        settings = latency_settings(budget, runtime="ort", batch=4, threads=2, use_cache=False, step_budget_s=0.3, check_budget_s=2, grid=grid)
    else:
        model = create_model("deit_base_patch16_224", weights="random")
        settings = latency_settings(budget, runtime="trt", batch=256, use_cache=False, grid=grid)
    result = prune(model, example_inputs(model), target_latency=budget, latency=settings, progress=say)
    lat = result.spec["latency"]
    say(f"latency: measured {lat['measured_ratio']['value']:.3f}× dense (budget {budget}), predicted {lat['predicted_ratio']:.3f}×, "
        f"table {lat['table']['build_seconds']:.0f} s / {lat['table']['measurements']} measurements")
    return {"macs_kept": result.plan.macs_after / result.plan.macs_before,
            "params_kept": result.plan.params_after / result.plan.params_before, **lat}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/gpu"))
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny DeiT at 32 px, batch 4, 2 + 4 steps: checks the script, measures nothing")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs (they spend most of their time compiling)")
    ap.add_argument("--no-trt", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--latency", metavar="BUDGET", default=None,
                    help="also prune DeiT-B to this measured latency (e.g. 0.5) on TensorRT FP16 at batch 256 (one engine per table step)")
    ap.add_argument("--latency-grid", type=float, nargs="+", default=[0.75, 0.5, 0.25], help="kept fractions each class is timed at")
    opts = ap.parse_args(argv)
    opts.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    say = lambda msg: print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)  # noqa: E731
    if not opts.dry_run:
        from isodeploy.runtime.torch_runner import require_cuda

        require_cuda()
    device = "cpu" if opts.dry_run else "cuda"
    base = dict(device=device, batch=4 if opts.dry_run else 256, warmup=2 if opts.dry_run else 20, iters=4 if opts.dry_run else 100,
                rounds=2 if opts.dry_run else 10, memory=not opts.no_memory, weights="random", threads=2 if opts.dry_run else None)
    with tempfile.TemporaryDirectory(prefix="gpu-protocol-") as tmp:
        models, folders, macs = build_models(opts.dry_run, Path(tmp), say)
        onnx = export_all(models, Path(tmp), say)
        phases["models"] = time.perf_counter() - t0
        known_models = {str(m.folder) if getattr(m, "folder", None) else m.timm_name: macs[r] for m, r in zip(models, ROLES)}
        known_onnx = {p: macs[r] for p, r in zip(onnx, ROLES)}
        reports = []
        for v in variants(opts.dry_run, not opts.no_compile, not opts.no_trt):
            start = time.perf_counter()
            say(f"run: {v['name']}")
            settings = BenchSettings(runtimes=(v["runtime"],), precision=v["precision"], compile=v["compile"], **base)
            if v["compile"]:
                settings.memory = False  # the eager runs' figure stands for it; compiling in each probe would double the time
            items, known = (models, known_models) if v["runtime"] == "torch" else (onnx, known_onnx)
            reports.append(run_bench(items, settings, roles=ROLES, known_macs=known))
            phases[v["name"]] = time.perf_counter() - start
    report = merge_reports(reports)
    latency = None
    if opts.latency:
        start = time.perf_counter()
        latency = latency_phase(opts.dry_run, opts.latency, tuple(opts.latency_grid), say)
        phases["latency"] = time.perf_counter() - start
    phases["total"] = time.perf_counter() - t0
    from isodeploy.benchmarking.envinfo import describe_machine

    data = report.to_dict()
    data["twin"] = macs["twin"]
    data["phases_s"] = phases
    data["dry_run"] = opts.dry_run
    data["latency_budget"] = latency
    (opts.out / "gpu_protocol.json").write_text(json.dumps(data, indent=2) + "\n")
    text = markdown(report, phases, describe_machine(report.env), opts.dry_run)
    write_text_atomic(opts.out / "gpu_protocol.md", text)
    print(text)
    if not opts.dry_run and phases["total"] > 480:
        print(f"note: took {phases['total']:.0f} s, over the 8-minute budget (try --no-compile)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
