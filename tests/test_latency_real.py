"""Latency-budget pruning on the real runtime (onnxruntime CPU) through the API and the CLI: tiny
models, short measurements; the statistics and the solver are tested exactly in test_latency.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import isodeploy

TINY = {"img_size": 32, "patch_size": 8, "depth": 2}
TESTS = Path(__file__).resolve().parent


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "isodeploy", *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_api_prunes_to_a_measured_fraction_and_reuses_the_cached_table(tmp_path, monkeypatch):
    monkeypatch.setenv("ISODEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = isodeploy.create_model("deit_tiny_patch16_224", weights="random", **TINY)
    settings = isodeploy.latency_settings(0.6, batch=2, threads=1, step_budget_s=0.3, check_budget_s=2, grid=(0.75, 0.5))
    lines: list[str] = []
    result = isodeploy.prune(model, isodeploy.example_inputs(model), target_latency="0.6", latency=settings, progress=lines.append)
    lat = result.spec["latency"]
    assert lat["runtime"] == "ort" and lat["batch"] == 2 and lat["threads"] == 1
    assert lat["measured_ratio"]["ci_high"] < 1.0  # the pruned model is measurably faster than the dense one
    assert lat["budget"]["fraction"] == 0.6 and abs(lat["budget_error"]) < 1.0 and lat["predicted_ratio"] < 1.0
    assert result.plan.macs_after < result.plan.macs_before
    assert any(line.startswith("latency table: class") and "ETA" in line for line in lines)  # progress with ETA
    table = lat["table"]
    assert not table["reused"] and table["measurements"] >= 4
    if table["load"]["busy"]:
        return
    assert table["path"].startswith(str(tmp_path / "cache"))
    saved = json.loads(open(table["path"]).read())
    assert saved["fingerprint"]["threads"] == 1 and saved["fingerprint"]["batch"] == 2 and saved["fingerprint"]["runtime"] == "ort"
    again = isodeploy.prune(model, isodeploy.example_inputs(model), target_latency="0.6", latency=settings)
    if table["load"]["busy"]:  # a table timed on a busy machine is not cached (test_latency.py checks that rule)
        assert not again.spec["latency"]["table"]["reused"]
    else:
        assert again.spec["latency"]["table"]["reused"] and again.spec["latency"]["table"]["path"] == table["path"]
    folder = tmp_path / "pruned"
    isodeploy.save(again, folder)
    reloaded = isodeploy.load(folder)
    x = isodeploy.example_inputs(model)
    assert torch.allclose(reloaded(x), again.model(x), atol=1e-5)
    assert json.loads((folder / "isodeploy.json").read_text())["latency"]["budget"]["text"] == "0.6"


def test_cli_prune_reuses_a_named_table_and_reports_the_latency(tmp_path, capsys, monkeypatch):
    from isodeploy.cli import main

    monkeypatch.syspath_prepend(str(TESTS))  # api_models:tiny_vit, a two-layer torchvision ViT
    table = tmp_path / "tiny_vit.json"
    model = isodeploy.create_model("api_models:tiny_vit", weights="random")
    settings = isodeploy.latency_settings(0.6, latency_table=table, batch=1, threads=1, step_budget_s=0.2, check_budget_s=1)
    isodeploy.prune(model, torch.randn(2, 3, 32, 32), target_latency="0.6", latency=settings)
    assert table.is_file()
    capsys.readouterr()
    out, report = tmp_path / "out", tmp_path / "prune.json"
    code = main(["prune", "api_models:tiny_vit", "--weights", "random", "--img-size", "32", "--target-latency", "0.6",
                 "--bench-batch", "1", "--threads", "1", "--latency-table", str(table), "-o", str(out), "--json", str(report)])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-1500:]
    lat = json.loads(report.read_text())["latency"]
    assert lat["table"]["reused"] and lat["table"]["path"] == str(table)
    assert lat["measured_ratio"]["value"] < 1.0 and "prediction_error" in lat
    text = " ".join(captured.out.split())
    assert "latency on ort (batch 1, 1 threads): budget 0.6 × dense; measured" in text and "table reused" in text
    # another thread count does not fit the named table: one line, nothing written
    code = main(["prune", "api_models:tiny_vit", "--weights", "random", "--img-size", "32", "--target-latency", "0.6",
                 "--bench-batch", "1", "--threads", "2", "--latency-table", str(table), "-o", str(tmp_path / "out2")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Traceback" not in err
    assert "threads 1 in the table ≠ 2 here" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out2" / "model.safetensors").exists()


@pytest.mark.parametrize("bad, words", [("abc", "takes a time"), ("0", "in (0, 1)"), ("-1", "in (0, 1)"), ("nan", "finite"),
                                        ("2", "for a time add its unit: 2ms"), ("-3ms", "positive time")])
def test_cli_bad_budgets_are_one_line_before_the_model_is_built(tmp_path, bad, words):
    out = tmp_path / "out"
    proc = _cli("prune", "deit_tiny_patch16_224", "--weights", "random", "--target-latency", bad, "-o", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: --target-latency") and words in line
    assert not out.exists()


def test_cli_a_time_above_the_dense_latency_is_refused(tmp_path):
    proc = _cli("prune", "deit_tiny_patch16_224", "--weights", "random", "--img-size", "32", "--target-latency", "100s",
                "--bench-batch", "1", "--threads", "1", "-o", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--target-latency 100s is not below the dense model's measured" in proc.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("extra, words", [(["--ratio", "0.3"], "drop --ratio"), (["--ranking", "local"], "--ranking must be isomorphic"),
                                          (["--latency-runtime", "tvm"], "--latency-runtime must be ort or trt")])
def test_cli_contradicting_options_are_one_line(tmp_path, extra, words):
    proc = _cli("prune", "deit_tiny_patch16_224", "--weights", "random", "--target-latency", "0.5", *extra, "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and words in proc.stderr, proc.stderr


def test_prune_export_checks_the_budget_before_any_stage(tmp_path):
    out = tmp_path / "out"
    proc = _cli("prune-export", "deit_tiny_patch16_224", "--weights", "random", "--target-latency", "fast", "-o", str(out))
    assert proc.returncode == 2 and "--target-latency" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
