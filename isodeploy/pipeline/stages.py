"""The stages of ``prune-export``; each returns True to go on. See :mod:`isodeploy.pipeline.run`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from isodeploy.fileio import write_json_atomic
from isodeploy.errors import IsodeployError
from isodeploy.pipeline.run import EXIT_NO_CUDA, EXIT_NO_TENSORRT, EXIT_NUMERICS, Pipeline, load_json
from isodeploy.pipeline.state import file_digest

WEIGHTS, ONNX, DENSE_ONNX, FP16_ONNX, PLAN = "model.safetensors", "model.onnx", "dense.onnx", "model.fp16.onnx", "model.plan"


def _source_options(p: Pipeline) -> dict[str, Any]:
    weights = p.opts.weights
    if weights not in ("pretrained", "random"):
        weights = f"file:{file_digest(Path(weights))}"
    return {"model": p.opts.model, "weights": weights, "img_size": p.opts.img_size, "create_kwargs": p.opts.create_kwargs}


def _recipe(p: Pipeline):
    from isodeploy.prune.api import config_from_recipe
    from isodeploy.zoo import resolve

    ref = resolve(p.opts.model)
    recipe = p.opts.preset or (ref.alias.recipe if ref.alias else None)
    if p.opts.ratio is not None and p.opts.preset is None:
        recipe = None
    if recipe is None and p.opts.ratio is None:
        raise IsodeployError(f"'{p.opts.model}' has no default recipe: pass --preset NAME or --ratio R (see 'isodeploy presets')")
    cfg = config_from_recipe(recipe, {"ratio": p.opts.ratio})
    cfg.validate()
    return cfg


def prune(p: Pipeline) -> bool:
    from isodeploy.prune.api import prune_model
    from isodeploy.prune.spec import write_into

    cfg = _recipe(p)

    def work():
        result = prune_model(p.dense, cfg, progress=p.say)
        write_into(p.dir, result.loaded.model, result.spec)
        p._pruned = None
        return {"macs_before": result.plan.macs_before, "macs_after": result.plan.macs_after,
                "params_before": result.plan.params_before, "params_after": result.plan.params_after,
                "preset": cfg.preset, "classes": [asdict(c) for c in result.classes]}

    p.stage("prune", {**_source_options(p), "config": asdict(cfg)}, [], [WEIGHTS, "isodeploy.json"], work)
    return True


def finetune(p: Pipeline) -> bool:
    if not p.opts.finetune_data:
        p.skipped.append(("finetune", "no --finetune-data given"))
        return True
    from isodeploy.train.config import FinetuneConfig
    from isodeploy.train.loop import run_finetune

    from isodeploy.prune.calib import scan_images

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
    from isodeploy.export.inputs import random_samples, to_batches
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
    from isodeploy.export.runners import OrtRunner, TorchRunner
    from isodeploy.export.verify import Gates

    return _gate_stage(p, "verify", "verify.json", [p.dir / ONNX, p.model_dir / WEIGHTS],
                       lambda: (OrtRunner(p.dir / ONNX), TorchRunner(p.pruned.model)), Gates.fp32())


def fp16(p: Pipeline) -> bool:
    from isodeploy.export.fp16 import convert_fp16
    from isodeploy.export.runners import OrtRunner
    from isodeploy.export.verify import Gates

    def work():
        report = convert_fp16(p.dir / ONNX, p.dir / FP16_ONNX)
        return {"fp32_nodes": len(report.fp32_nodes)}

    p.stage("fp16", {}, [p.dir / ONNX], [FP16_ONNX], work)
    return _gate_stage(p, "verify-fp16", "verify_fp16.json", [p.dir / FP16_ONNX, p.dir / ONNX],
                       lambda: (OrtRunner(p.dir / FP16_ONNX), OrtRunner(p.dir / ONNX)), Gates.fp16())


def engine(p: Pipeline) -> bool:
    from isodeploy.export.runners import OrtRunner
    from isodeploy.export.verify import Gates
    from isodeploy.export.trt_env import cuda_available, tensorrt_available

    missing_trt, missing_cuda = tensorrt_available(), cuda_available()
    if missing_trt or missing_cuda:
        code = EXIT_NO_TENSORRT if missing_trt else EXIT_NO_CUDA
        what = "TensorRT is not installed" if missing_trt else "no CUDA GPU is visible"
        for stage in ("engine", "verify-engine", "bench", "triton"):
            p.skipped.append((stage, what))
        return p.fail(code, f"{what}: stopped after the FP16 ONNX ({p.dir / FP16_ONNX}); '--target onnx' works on this machine")
    from isodeploy.export.tensorrt import build_engine
    from isodeploy.export.tensorrt_runner import TrtRunner

    def work():
        meta = build_engine(p.dir / FP16_ONNX, p.dir / PLAN, precision="fp16")
        return {"precision": "fp16", "tensorrt": getattr(meta, "tensorrt_version", None)}

    p.stage("engine", {"precision": "fp16"}, [p.dir / FP16_ONNX], [PLAN], work)
    return _gate_stage(p, "verify-engine", "verify_engine.json", [p.dir / PLAN, p.dir / ONNX],
                       lambda: (TrtRunner(p.dir / PLAN), OrtRunner(p.dir / ONNX)), Gates.fp16())


def bench(p: Pipeline) -> bool:
    from isodeploy.bench.suite import BenchSettings, run_bench
    from isodeploy.export.onnx import export_onnx

    p.stage("export-dense", _source_options(p), [], [DENSE_ONNX], lambda: {"exporter": export_onnx(p.dense, p.dir / DENSE_ONNX).exporter})
    settings = BenchSettings(runtimes=("ort",), device="cpu", batch=p.opts.bench_batch, warmup=3, iters=p.opts.bench_iters,
                             threads=p.opts.bench_threads, memory=True)

    from isodeploy.export.trt_env import cuda_available

    gpu = cuda_available() is None
    engine = p.dir / PLAN if (p.dir / PLAN).exists() else None

    def work():
        report = run_bench([str(p.dir / DENSE_ONNX), str(p.dir / ONNX)], settings)
        if gpu:  # the paper's GPU protocol: batch 256; the engine only when one was built
            gpu_settings = BenchSettings(runtimes=("torch",), device="cuda", iters=p.opts.bench_iters, warmup=3, memory=True)
            report.results += run_bench([p.dense, p.pruned], gpu_settings).results
            if engine is not None:
                trt_settings = BenchSettings(runtimes=("trt",), device="cuda", iters=p.opts.bench_iters, warmup=3, memory=True)
                report.results += run_bench([str(engine)], trt_settings).results
        write_json_atomic(p.dir / "bench.json", report.to_dict())
        return {"results": len(report.results)}

    inputs = [p.dir / DENSE_ONNX, p.dir / ONNX] + ([engine] if engine else [])
    p.stage("bench", {"batch": settings.batch, "iters": settings.iters, "threads": settings.threads, "gpu": gpu},
            inputs, ["bench.json"], work)
    if not gpu:
        p.skipped.append(("bench on CUDA (torch, TensorRT)", "no CUDA GPU visible"))
    return True


def triton(p: Pipeline) -> bool:
    from isodeploy.export.triton import write_triton_repo

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
