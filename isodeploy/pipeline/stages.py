"""The stages of ``prune-export``; each returns True to go on. Their order, inputs and outputs: :mod:`isodeploy.pipeline.stage_table`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from isodeploy.core.safe_write import write_json_atomic
from isodeploy.core.errors import IsodeployError
from isodeploy.pipeline.context import EXIT_NO_CUDA, EXIT_NO_TENSORRT, EXIT_NUMERICS, Pipeline, load_json
from isodeploy.pipeline.state import file_digest, read_state

WEIGHTS, ONNX, DENSE_ONNX, FP16_ONNX, PLAN = "model.safetensors", "model.onnx", "dense.onnx", "model.fp16.onnx", "model.plan"
UNIFORM_DIR, UNIFORM_ONNX, STANDARD_ONNX, PLOT = "uniform", "uniform.onnx", "standard.onnx", "latency_vs_macs.png"
GPU_BATCH = 256  # the paper's GPU protocol
MEMORY_REPEATS = 3  # fresh-process probes per artifact: gives the memory ratios a spread


def _source_options(p: Pipeline) -> dict[str, Any]:
    weights = p.opts.weights
    if weights not in ("pretrained", "random"):
        weights = f"file:{file_digest(Path(weights))}"
    options = {"model": p.opts.model, "weights": weights, "img_size": p.opts.img_size, "create_kwargs": p.opts.create_kwargs}
    from isodeploy.loading import model_folder

    folder = model_folder(p.opts.model)
    if folder is not None and folder.is_dir():  # a folder MODEL: its content, not its name, decides whether stages are fresh
        options["model_content"] = {n: file_digest(folder / n) for n in (WEIGHTS, "isodeploy.json") if (folder / n).is_file()}
    return options


def _recipe(p: Pipeline):
    from isodeploy.pruning.pruner import config_from_recipe
    from isodeploy.loading import resolve

    ref = resolve(p.opts.model)
    if p.opts.target_latency is not None:
        from isodeploy.latency.settings import refuse_explicit_cuts

        refuse_explicit_cuts([flag for flag, v in (("--preset", p.opts.preset), ("--ratio", p.opts.ratio)) if v is not None])
        return config_from_recipe(None, {})
    recipe = p.opts.preset or (ref.alias.recipe if ref.alias else None)
    if p.opts.ratio is not None and p.opts.preset is None:
        recipe = None
    if recipe is None and p.opts.ratio is None:
        raise IsodeployError(f"'{p.opts.model}' has no default recipe: pass --preset NAME or --ratio R (see 'isodeploy presets')")
    cfg = config_from_recipe(recipe, {"ratio": p.opts.ratio})
    cfg.validate()
    return cfg


def latency_settings(p: Pipeline):
    """The latency-budget settings of this run (None without --target-latency): the bench's runtime
    (TensorRT FP16 with --target trt, else onnxruntime CPU), batch and threads."""
    if p.opts.target_latency is None:
        return None
    from isodeploy.latency.settings import make_settings

    return make_settings(p.opts.target_latency, latency_table=p.opts.latency_table, runtime="trt" if p.opts.target == "trt" else "ort",
                         batch=p.opts.bench_batch, threads=p.opts.bench_threads)


def prune(p: Pipeline) -> bool:
    from isodeploy.pruning.pruner import prune_model
    from isodeploy.pruning.spec import write_into

    cfg = _recipe(p)
    settings = latency_settings(p)

    def work():
        prune_fn = None
        if settings is not None:
            from isodeploy.latency.prune import prune_to_latency

            prune_fn = lambda *a, **kw: prune_to_latency(*a[:3], settings, **kw)  # noqa: E731
        result = prune_model(p.dense, cfg, progress=p.say, prune_fn=prune_fn)
        write_into(p.dir, result.loaded.model, result.spec)
        p._pruned = None
        return {"macs_before": result.plan.macs_before, "macs_after": result.plan.macs_after,
                "params_before": result.plan.params_before, "params_after": result.plan.params_after,
                "preset": cfg.preset, "classes": [asdict(c) for c in result.classes], "latency": result.spec.get("latency")}

    options = {**_source_options(p), "config": asdict(cfg)}
    if settings is not None:
        options["latency"] = {"budget": settings.budget.text, "runtime": settings.runtime, "batch": settings.batch,
                              "threads": settings.threads, "table": str(settings.table_path) if settings.table_path else None}
    p.stage("prune", options, [], [WEIGHTS, "isodeploy.json"], work)
    return True


def finetune(p: Pipeline) -> bool:
    if not p.opts.finetune_data:
        p.skipped.append(("finetune", "no --finetune-data given"))
        return True
    from isodeploy.train.config import FinetuneConfig
    from isodeploy.train.loop import run_finetune

    from isodeploy.pruning.calib import scan_images

    def work():
        images = len(scan_images(Path(p.opts.finetune_data)).paths)  # small folders get a smaller batch, not an error
        cfg = FinetuneConfig(student=str(p.dir), data=str(p.opts.finetune_data), output=str(p.dir / "finetune"),
                             epochs=p.opts.epochs, batch_size=max(1, min(64, images)), force=True)
        report = run_finetune(cfg)
        p._pruned = None
        return {"best_epoch": report.best_epoch, "best_metric": report.best_metric, "best_value": report.best_value}

    p.stage("finetune", {"data": str(p.opts.finetune_data), "epochs": p.opts.epochs}, [p.dir / WEIGHTS],
            ["finetune/best/model.safetensors"], work)
    return True


def export(p: Pipeline) -> bool:
    from isodeploy.export.onnx import export_onnx

    def work():
        report = export_onnx(p.pruned, p.dir / ONNX)
        return {"exporter": report.exporter, "opset": report.opset}

    p.stage("export", {"opset": 17}, [p.model_dir / WEIGHTS], [ONNX], work)
    return True


def _verify(candidate, reference, input_size, samples: int, gates) -> Any:
    from isodeploy.core.inputs import random_samples, to_batches
    from isodeploy.export.verify import verify

    batches = to_batches(random_samples(samples, input_size, seed=0), [1, 7])
    return verify(candidate, reference, batches, gates)


def _gate_stage(p: Pipeline, name: str, report_file: str, inputs: list[Path], make_runners, gates) -> bool:
    def work():
        candidate, reference = make_runners()
        report = _verify(candidate, reference, p.pruned.input_size, p.opts.verify_inputs, gates)
        write_json_atomic(p.dir / report_file, report.to_dict())
        detail = {"passed": report.passed, "gates": gates.describe(), "failures": report.failures[:3]}
        if not report.passed:
            detail["_status"] = "failed"
        return detail

    record = p.stage(name, {"inputs": p.opts.verify_inputs, "gates": asdict(gates)}, inputs, [report_file], work)
    if record.detail.get("passed") is False:
        return p.fail(EXIT_NUMERICS, f"{name}: numerics check failed: {record.detail['failures'][0] if record.detail['failures'] else ''}")
    return True


def verify(p: Pipeline) -> bool:
    from isodeploy.runtime.ort import OrtRunner
    from isodeploy.runtime.torch_runner import TorchRunner
    from isodeploy.export.verify import Gates

    return _gate_stage(p, "verify", "verify.json", [p.dir / ONNX, p.model_dir / WEIGHTS],
                       lambda: (OrtRunner(p.dir / ONNX), TorchRunner(p.pruned.model)), Gates.fp32())


def fp16(p: Pipeline) -> bool:
    from isodeploy.export.fp16 import convert_fp16
    from isodeploy.runtime.ort import OrtRunner
    from isodeploy.export.verify import Gates

    def work():
        report = convert_fp16(p.dir / ONNX, p.dir / FP16_ONNX)
        return {"fp32_nodes": len(report.fp32_nodes)}

    p.stage("fp16", {}, [p.dir / ONNX], [FP16_ONNX], work)
    return _gate_stage(p, "verify-fp16", "verify_fp16.json", [p.dir / FP16_ONNX, p.dir / ONNX],
                       lambda: (OrtRunner(p.dir / FP16_ONNX), OrtRunner(p.dir / ONNX)), Gates.fp16())


def engine(p: Pipeline) -> bool:
    from isodeploy.runtime.ort import OrtRunner
    from isodeploy.export.verify import Gates
    from isodeploy.runtime.trt.env import cuda_available, tensorrt_available

    missing_trt, missing_cuda = tensorrt_available(), cuda_available()
    if missing_trt or missing_cuda:
        code = EXIT_NO_TENSORRT if missing_trt else EXIT_NO_CUDA
        what = "TensorRT is not installed" if missing_trt else "no CUDA GPU is visible"
        for stage in ("engine", "verify-engine", "bench", "triton"):
            p.skipped.append((stage, what))
        return p.fail(code, f"{what}: stopped after the FP16 ONNX ({p.dir / FP16_ONNX}); '--target onnx' works on this machine")
    from isodeploy.export.trt.build import build_engine
    from isodeploy.runtime.trt.runner import TrtRunner

    def work():
        # the profile is tuned for the batch bench times on the GPU (the protocol's 256)
        meta = build_engine(p.dir / FP16_ONNX, p.dir / PLAN, precision="fp16", min_batch=1, opt_batch=GPU_BATCH, max_batch=GPU_BATCH)
        return {"precision": "fp16", "tensorrt": getattr(meta, "tensorrt_version", None)}

    p.stage("engine", {"precision": "fp16", "opt_batch": GPU_BATCH}, [p.dir / FP16_ONNX], [PLAN], work)
    return _gate_stage(p, "verify-engine", "verify_engine.json", [p.dir / PLAN, p.dir / ONNX],
                       lambda: (TrtRunner(p.dir / PLAN), OrtRunner(p.dir / ONNX)), Gates.fp16())


def _pruned_macs(p: Pipeline) -> tuple[int | None, int | None]:
    state = read_state(p.dir)
    macs, params = state.get("macs") or {}, state.get("params") or {}
    return (macs.get("after") if isinstance(macs, dict) else None), (params.get("after") if isinstance(params, dict) else None)


def _default_size(p: Pipeline) -> bool:
    return p.opts.img_size is None and not p.opts.create_kwargs


def twin(p: Pipeline) -> bool:
    """The uniform-width model at the pruned model's MACs (±1 %), saved as a folder and an ONNX."""
    if not getattr(p.opts, "uniform_twin", True):
        p.skipped.append(("uniform-twin", "--no-uniform-twin"))
        return True
    target, _ = _pruned_macs(p)
    if not target:
        p.skipped.append(("uniform-twin", "the prune stage recorded no MACs"))
        return True
    from isodeploy.benchmarking.twin import make_twin
    from isodeploy.export.onnx import export_onnx
    from isodeploy.pruning.spec import write_into

    def work():
        result, info = make_twin(p.dense, int(target), progress=None)
        write_into(p.dir / UNIFORM_DIR, result.loaded.model, result.spec)
        export_onnx(result.loaded, p.dir / UNIFORM_ONNX)
        return {"twin": info.to_dict()}

    p.stage("uniform-twin", {**_source_options(p), "target_macs": int(target), "rule": "local ranking, one ratio, round 8→4→2→1"},
            [p.dir / WEIGHTS], [UNIFORM_DIR, UNIFORM_ONNX], work)
    return True


def standard(p: Pipeline) -> bool:
    """A stock timm model of about the pruned MACs (DeiT-S for DeiT-B at 4.2 G), when one is known."""
    from isodeploy.benchmarking.twin import standard_model

    target, _ = _pruned_macs(p)
    found = standard_model(p.dense.timm_name, int(target or 0), default_size=_default_size(p)) if target else None
    if found is None:
        return True
    name = found[0]
    weights = p.opts.weights if p.opts.weights in ("pretrained", "random") else "random"

    def work():
        from isodeploy.benchmarking.macs import count_macs
        from isodeploy.export.onnx import export_onnx
        from isodeploy.loading import load_model

        loaded = load_model(name, weights=weights)
        counted = count_macs(loaded.model, loaded.example_input(2))
        export_onnx(loaded, p.dir / STANDARD_ONNX)
        return {"model": name, "macs": counted.macs, "params": counted.params}

    p.stage("export-standard", {"model": name, "weights": weights}, [], [STANDARD_ONNX], work)
    return True


def _bench_items(p: Pipeline) -> tuple[list[str], list[str], dict[str, tuple[int | None, int | None]]]:
    """The ONNX files of one interleaved run, their roles, and the MACs already counted for them."""
    state = read_state(p.dir)
    macs, params = state.get("macs") or {}, state.get("params") or {}
    items = [str(p.dir / DENSE_ONNX), str(p.dir / ONNX)]
    roles = ["dense", "pruned"]
    known = {items[0]: (macs.get("before"), params.get("before")), items[1]: (macs.get("after"), params.get("after"))}
    twin_rec = (p.book.recorded("uniform-twin") or {}).get("detail", {}).get("twin")
    if twin_rec and (p.dir / UNIFORM_ONNX).is_file():
        items.append(str(p.dir / UNIFORM_ONNX))
        roles.append("uniform-twin")
        known[items[-1]] = (twin_rec["macs"], twin_rec["params"])
    std = (p.book.recorded("export-standard") or {}).get("detail", {})
    if std.get("model") and (p.dir / STANDARD_ONNX).is_file():
        items.append(str(p.dir / STANDARD_ONNX))
        roles.append("standard")
        known[items[-1]] = (std["macs"], std["params"])
    return items, roles, known


def bench_settings(p: Pipeline, **overrides: Any) -> Any:
    """The bench settings of this run's protocol (adaptive by default; paper = 20 + 100 steps, batch 8 / 256)."""
    from isodeploy.benchmarking.suite import BenchSettings

    o = p.opts
    adaptive = (o.bench_protocol or ("fixed" if o.bench_iters is not None or o.bench_warmup is not None else "adaptive")) == "adaptive"
    base = dict(runtimes=("ort",), device="cpu", batch=o.bench_batch, threads=o.bench_threads, memory=True,
                memory_repeats=1 if adaptive else MEMORY_REPEATS, protocol=o.bench_protocol, warmup=o.bench_warmup,
                iters=o.bench_iters, budget_s=o.bench_budget)
    return BenchSettings(**{**base, **overrides}).resolved()


def bench(p: Pipeline) -> bool:
    """Dense, pruned, uniform twin (and standard model) in one interleaved run per runtime, by the run's
    protocol (adaptive: until pruned ÷ twin is precise or the budget ends; paper: CPU batch 8, GPU
    batch 256, 20 warm-up + 100 timed steps in 10 rounds); memory from fresh processes."""
    from isodeploy.benchmarking.suite import run_bench
    from isodeploy.export.onnx import export_onnx

    p.stage("export-dense", _source_options(p), [], [DENSE_ONNX], lambda: {"exporter": export_onnx(p.dense, p.dir / DENSE_ONNX).exporter})
    twin(p)
    standard(p)
    items, roles, known = _bench_items(p)
    settings = bench_settings(p)
    plan = settings.plan()

    from isodeploy.runtime.trt.env import cuda_available

    gpu = cuda_available() is None
    engine = p.dir / PLAN if (p.dir / PLAN).exists() else None

    def work():
        from isodeploy.benchmarking.compare import merge_reports

        p.say(f"bench: {plan.describe()}; then {settings.memory_repeats} fresh-process memory probe(s) per artifact")
        reports = [run_bench(items, settings, roles=roles, known_macs=known, progress=p.progress)]
        if gpu:
            reports += _gpu_runs(p, items, roles, known, engine)
        report = merge_reports(reports)
        write_json_atomic(p.dir / "bench.json", report.to_dict())
        _plot(p, report)
        return {"results": len(report.results), "roles": roles}

    inputs = [Path(i) for i in items] + ([engine] if engine else [])
    p.stage("bench", {"batch": settings.batch, "protocol": plan.to_dict(), "threads": settings.threads, "gpu": gpu, "roles": roles,
                      "memory_repeats": settings.memory_repeats}, inputs, ["bench.json", PLOT], work)
    if not gpu:
        p.skipped.append(("bench on CUDA (torch FP32/FP16, TensorRT)", "no CUDA GPU visible"))
    return True


def _gpu_runs(p: Pipeline, items: list[str], roles: list[str], known: dict, engine: Path | None) -> list:
    """The GPU protocol (batch 256): torch eager FP32 and FP16 on the models, onnxruntime CUDA when it is
    installed, TensorRT FP16 engines (profile opt = 256) when TensorRT is; each an interleaved run."""
    from isodeploy.benchmarking.suite import run_bench
    from isodeploy.pruning.spec import load_folder

    def settings(runtime: str, **extra: Any) -> Any:
        return bench_settings(p, runtimes=(runtime,), device="cuda", batch=None, **extra)
    models, model_roles = [p.dense, p.pruned], ["dense", "pruned"]
    if "uniform-twin" in roles:
        models.append(load_folder(p.dir / UNIFORM_DIR))
        model_roles.append("uniform-twin")
    model_macs = {m.timm_name if not getattr(m, "folder", None) else str(m.folder): known[items[roles.index(r)]] for m, r in zip(models, model_roles)}
    runs = []

    def attempt(what: str, make) -> None:  # one runtime that cannot run here is a note, not a lost bench stage
        try:
            runs.append(make())
        except IsodeployError as exc:
            p.skipped.append((f"bench on {what}", str(exc)))

    for precision in ("fp32", "fp16"):
        attempt(f"torch CUDA {precision}", lambda precision=precision: run_bench(
            models, settings("torch", precision=precision), roles=model_roles, known_macs=model_macs, progress=p.progress))
    try:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            attempt("onnxruntime CUDA", lambda: run_bench(items, settings("ort"), roles=roles, known_macs=known, progress=p.progress))
    except ImportError:
        pass
    from isodeploy.runtime.trt.env import tensorrt_available

    if tensorrt_available() is None:
        trt_items = [str(engine) if r == "pruned" and engine else i for i, r in zip(items, roles) if r != "standard"]
        trt_roles = [r for r in roles if r != "standard"]
        trt_known = {str(engine) if r == "pruned" and engine else i: known[i] for i, r in zip(items, roles) if r != "standard"}
        attempt("TensorRT", lambda: run_bench(trt_items, settings("trt"), roles=trt_roles, known_macs=trt_known, progress=p.progress))
    else:
        p.skipped.append(("bench on TensorRT", "TensorRT is not installed"))
    return runs


def _plot(p: Pipeline, report) -> None:
    from isodeploy.benchmarking.compare import build_compare
    from isodeploy.benchmarking.plot import plot_latency_vs_macs

    plot_latency_vs_macs(build_compare(report), p.dir / PLOT)


def triton(p: Pipeline) -> bool:
    from isodeploy.serve.triton_repo import write_triton_repo

    artifact = p.dir / (PLAN if p.opts.target == "trt" else ONNX)
    name = p.opts.triton_name or "".join(c if c.isalnum() or c in "_-" else "_" for c in p.pruned.timm_name) + "_pruned"

    def work():
        report = write_triton_repo(artifact, name, p.dir / "triton", force=True)
        return {"name": name, "config": str(getattr(report, "config_path", ""))}

    p.stage("triton", {"name": name}, [artifact], ["triton"], work)
    return True


def report(p: Pipeline) -> dict[str, Any]:
    from isodeploy.pipeline.report import build_report, write_report

    data = build_report(p, load_json)
    write_report(p.dir, data)
    return data
