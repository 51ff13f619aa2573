"""`isodeploy prune-export` end to end on a small model: stages, re-runs, --force, interruption, TRT fallback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isodeploy.cli import main

SMALL = ["deit_tiny_patch16_224", "--weights", "random", "--img-size", "32", "--ratio", "0.3", "--bench-iters", "3"]
FEW_WARMUP = ["--bench-warmup", "2"]


def _stages(folder: Path) -> dict:
    return json.loads((folder / "isodeploy.json").read_text())["pipeline"]["stages"]


def _run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_onnx_target_runs_every_stage_then_skips_then_forces(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, "prune-export", *SMALL, "-o", out, "--json", tmp_path / "r.json")
    assert code == 0, err
    for name in ("model.safetensors", "isodeploy.json", "model.onnx", "dense.onnx", "uniform.onnx", "bench.json", "report.md", "report.json",
                 "latency_vs_macs.png"):
        assert (out / name).exists(), name
    assert list((out / "triton").glob("*/config.pbtxt"))
    stages = _stages(out)
    assert {"prune", "export", "verify", "export-dense", "uniform-twin", "bench", "triton"} <= set(stages)
    assert all(s["status"] == "done" for s in stages.values())
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["numerics"]["onnxruntime FP32 vs PyTorch"]["passed"] is True
    assert report["macs"]["after"] < report["macs"]["before"]
    assert {r["artifact"] for r in report["latency"]} == {"dense.onnx", "model.onnx", "uniform.onnx"}
    md = (out / "report.md").read_text()
    for needle in ("Weights were random", "Recipe:", "| hidden |", "MACs", "passed", "Measured on", "finetune: no --finetune-data"):
        assert needle in md, needle
    first_onnx = (out / "model.onnx").stat().st_mtime_ns

    code, stdout, _ = _run(capsys, "prune-export", *SMALL, "-o", out)
    assert code == 0
    for name in ("prune", "export", "verify", "export-dense", "uniform-twin", "bench", "triton"):
        assert f"{name}: unchanged, skipped" in stdout
    assert (out / "model.onnx").stat().st_mtime_ns == first_onnx

    code, stdout, _ = _run(capsys, "prune-export", *SMALL, "-o", out, "--force")
    assert code == 0 and "unchanged, skipped" not in stdout
    assert (out / "model.onnx").stat().st_mtime_ns != first_onnx

    # a changed option redoes prune and everything after it
    code, stdout, _ = _run(capsys, "prune-export", *SMALL[:-4], "--ratio", "0.5", "--bench-iters", "3", "-o", out)  # default warm-up 20
    assert code == 0 and "prune: done" in stdout and "export: done" in stdout


def test_killed_mid_export_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "isodeploy", "prune-export", *SMALL, "--no-bench", "-o", str(out)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if line.startswith("export …"):
            time.sleep(0.5)  # inside torch.onnx export
            os.killpg(proc.pid, signal.SIGKILL)
            break
        assert time.time() < deadline
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert "export" not in _stages(out)  # the stage never recorded itself as done
    assert not (out / "model.onnx").exists() or (out / "model.onnx").stat().st_size > 0
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "prune: unchanged, skipped" in rerun.stdout and "export: done" in rerun.stdout
    assert _stages(out)["verify"]["detail"]["passed"] is True
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".isodeploy-owned.json"]  # no temporaries left


def test_trt_target_without_tensorrt_stops_after_fp16(tmp_path, capsys):
    pytest.importorskip("onnxconverter_common")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here: this test covers machines without it")
    except ImportError:
        pass
    out = tmp_path / "run"
    code, _, err = _run(capsys, "prune-export", *SMALL, *FEW_WARMUP, "-o", out)  # an earlier CPU run with a bench in the same folder
    assert code == 0 and (out / "bench.json").is_file(), err
    code, _, err = _run(capsys, "prune-export", *SMALL, "--target", "trt", "-o", out)
    assert code == 3
    assert err.strip().count("\n") == 0 and "TensorRT is not installed" in err and "--target onnx" in err
    assert (out / "model.fp16.onnx").exists() and (out / "model.onnx").exists()
    assert not (out / "model.plan").exists()
    assert _stages(out)["verify-fp16"]["detail"]["passed"] is True
    md = (out / "report.md").read_text()
    assert "engine: TensorRT is not installed" in md and "Stopped (exit 3)" in md
    # one report describes one run: the earlier run's bench tables, ratios and plot are not this run's
    data = json.loads((out / "report.json").read_text())
    assert data["latency"] == [] and data["ratios"] == [] and data["verdict"] is None and data["plot"] is None
    assert {"bench.json", "latency_vs_macs.png"} <= set(data["stale_artifacts"])
    assert "| dense.onnx |" not in md and "Not measured" in md and "Left by an earlier run" in md


@pytest.mark.parametrize(
    "args,message",
    [
        (["deit_tiny_patch16_224", "--weights", "random", "--img-size", "32", "--preset", "nope"], "unknown preset 'nope'"),
        (["resnet18", "--weights", "random", "--img-size", "32", "--preset", "deit-4.2g"], "has no attention heads"),
        (["resnet18", "--weights", "random", "--img-size", "32"], "has no default recipe"),
        (["deit_tiny_patch16_224", "--weights", "random", "--img-size", "32", "--ratio", "0.3", "--target", "tpu"], "--target must be"),
    ],
)
def test_bad_pipeline_input(tmp_path, capsys, args, message):
    code, _, err = _run(capsys, "prune-export", *args, "-o", tmp_path / "o")
    assert code == 2 and message in err, err
    assert err.strip().count("\n") == 0


def test_output_folder_guards(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    code, _, err = _run(capsys, "prune-export", *SMALL, "-o", a_file)
    assert code == 2 and "is a file" in err and a_file.read_text() == "keep me"
    other = tmp_path / "other"
    other.mkdir()
    (other / "isodeploy.json").write_text(json.dumps({"source": {"timm": "resnet18"}, "pipeline": {}}))
    code, _, err = _run(capsys, "prune-export", *SMALL, "-o", other)
    assert code == 2 and "holds a run for 'resnet18'" in err
    assert json.loads((other / "isodeploy.json").read_text())["source"]["timm"] == "resnet18"


def test_not_enough_disk(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    code, _, err = _run(capsys, "prune-export", *SMALL, "-o", tmp_path / "o")
    assert code == 2 and "not enough disk" in err


def test_finetune_stage_feeds_the_export(tmp_path, capsys):
    from PIL import Image

    data = tmp_path / "images"
    data.mkdir()
    for i in range(8):
        Image.new("RGB", (40, 40), color=(30 * i, 255 - 30 * i, 90)).save(data / f"{i}.png")
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, "prune-export", *SMALL, "--no-bench", "--finetune-data", data, "--epochs", "1", "-o", out)
    assert code == 0, err
    stages = _stages(out)
    assert stages["finetune"]["status"] == "done"
    assert (out / "finetune" / "best" / "model.safetensors").exists()
    # the exported ONNX is the fine-tuned student, not the just-pruned one
    import numpy as np
    import onnxruntime as ort

    import isodeploy

    tuned = isodeploy.load(out / "finetune" / "best")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    session = ort.InferenceSession(str(out / "model.onnx"))
    import torch

    with torch.no_grad():
        expected = tuned(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], expected, atol=1e-4, rtol=1e-3)


def test_report_compares_pruned_with_its_uniform_twin_by_the_protocol(tmp_path, capsys):
    """The main job's report: dense, pruned and uniform-twin rows at the CPU protocol's batch 8, the
    pruned/uniform latency-per-MAC and memory ratios with their spread, the plot; report.json the same."""
    out = tmp_path / "run"
    code, _, err = _run(capsys, "prune-export", *SMALL[:-2], "--bench-iters", "6", *FEW_WARMUP, "-o", out)
    assert code == 0, err
    data = json.loads((out / "report.json").read_text())
    rows = {r["role"]: r for r in data["latency"]}
    assert set(rows) == {"dense", "pruned", "uniform-twin"}
    for r in rows.values():
        assert (r["batch"], r["warmup"], r["iters"], r["rounds"], r["device"], r["runtime"]) == (8, 2, 6, 6, "cpu", "ort")
        assert r["ms_per_gmac"] > 0 and r["peak_mb"] > 0 and r["memory_method"] == "cpu-peak-rss-fresh-process"
    twin = data["twin"]
    assert abs(twin["macs"] / data["macs"]["after"] - 1) <= 0.01 and rows["uniform-twin"]["macs"] == twin["macs"]
    ratios = {(x["metric"], x["numerator_role"], x["denominator_role"]): x for x in data["ratios"]}
    per_mac = ratios[("latency_per_gmac", "pruned", "uniform-twin")]
    mem = ratios[("peak_memory", "pruned", "uniform-twin")]
    assert per_mac["n"] == 6 and per_mac["low"] <= per_mac["q1"] <= per_mac["median"] <= per_mac["q3"] <= per_mac["high"]
    assert mem["n"] == 3 and mem["low"] <= mem["median"] <= mem["high"]
    assert data["plot"] == "latency_vs_macs.png" and (out / "latency_vs_macs.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    for needle in ("| dense.onnx | dense | ort | cpu | 8 | 2 + 6 (6) |", "| model.onnx | pruned | ort | cpu | 8 | 2 + 6 (6) |",
                   "| uniform.onnx | uniform-twin | ort | cpu | 8 | 2 + 6 (6) |", "pruned ÷ uniform-twin", "latency per GMAC",
                   "peak memory", "![latency per GMAC vs MACs", "Uniform twin: every class cut by one ratio", "fresh subprocess",
                   "fixed counts: 2 warm-up + 6 timed steps", "uniform twin widths |"):
        assert needle in md, needle
    assert per_mac["ci_low"] <= per_mac["value"] <= per_mac["ci_high"] and per_mac["confidence"] >= 0.95
    assert f"**{per_mac['value']:.3f}×** | {per_mac['ci_low']:.3f}–{per_mac['ci_high']:.3f} | {per_mac['verdict']} |" in md  # the same numbers as report.json
    assert data["verdict"]["verdict"] == per_mac["verdict"] and data["verdict"]["sentence"] in md


def test_the_default_bench_is_the_protocol():
    from isodeploy.benchmarking.suite import DEFAULT_BATCH, BenchSettings
    from isodeploy.pipeline.run import PipelineOptions
    from isodeploy.pipeline.stages import GPU_BATCH

    opts = PipelineOptions(model="deit_b", output=Path("unused"))
    assert (opts.bench_protocol, opts.bench_warmup, opts.bench_iters, opts.uniform_twin) == (None, None, None, True)
    cpu = BenchSettings(runtimes=("ort",), device="cpu", batch=opts.bench_batch).resolved()
    assert cpu.batch == 8 and cpu.protocol == "adaptive" and cpu.budget_s == 120
    paper = BenchSettings(runtimes=("ort",), device="cpu", protocol="paper").resolved()
    assert (paper.batch, paper.warmup, paper.iters, paper.rounds) == (8, 20, 100, 10)
    assert DEFAULT_BATCH["cuda"] == GPU_BATCH == 256  # GPU rows and the engine's profile (opt = 256)
