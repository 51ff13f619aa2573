"""Resource limits: a batch far beyond memory is refused in one line *before* anything is allocated
(the process stays small), and impossible or NaN numbers are refused before long work starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from reliability_check import TINY, assert_refused, run


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    """A tiny conv net ONNX with a dynamic batch (no isodeploy metadata)."""
    import torch

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    torch.onnx.export(net, torch.randn(1, 3, 32, 32), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False, opset_version=17)
    return path


@pytest.mark.parametrize(
    "args,needle",
    [
        (["bench", "{onnx}", "--runtime", "ort", "--batch", "10000000", "--iters", "2", "--no-memory"], "--batch 10000000 needs at least"),
        (["verify", "{onnx}", "--reference", "{onnx}", "--batch-sizes", "1,10000000", "--inputs", "2"], "--batch-sizes 10000000 needs at least"),
        (["bench", "deit_tiny_patch16_224", "--weights", "random", "--runtime", "torch", "--batch", "1000000", "--iters", "2", "--no-memory"],
         "--batch 1000000 needs at least"),
    ],
)
def test_batches_beyond_memory_are_refused_before_allocating(tiny_onnx, tmp_path, args, needle):
    """In a fresh process, so its peak RSS shows nothing big was allocated."""
    args = [a.replace("{onnx}", str(tiny_onnx)) for a in args]
    code = ("import resource, sys; from isodeploy.cli import main; rc = main(sys.argv[1:]); "
            "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "use at most about" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    rss_kb = int(proc.stderr.split("maxrss_kb")[1].split()[0])
    assert rss_kb < 3 * 2**20, rss_kb  # < 3 GiB: the refusal came before the batch was built
    assert list(tmp_path.iterdir()) == []


def test_the_estimate_follows_the_memory_limit(tiny_onnx, capsys, monkeypatch):
    monkeypatch.setenv("ISODEPLOY_MEMORY_LIMIT_MB", "1")
    assert_refused(run(capsys, "verify", tiny_onnx, "--reference", tiny_onnx, "--batch-sizes", "1,64", "--inputs", "2"),
                   2, "--batch-sizes 64 needs at least")
    monkeypatch.setenv("ISODEPLOY_MEMORY_LIMIT_MB", "100000")
    assert run(capsys, "verify", tiny_onnx, "--reference", tiny_onnx, "--batch-sizes", "1,64", "--inputs", "2").code == 0


def test_pipeline_refuses_a_huge_bench_batch_before_pruning(tmp_path, capsys):
    assert_refused(run(capsys, "prune-export", *TINY, "--bench-batch", "10000000", "-o", tmp_path / "out"), 2, "--bench-batch 10000000")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--atol", "nan"], "--atol must be a number"),
        (["--rtol", "-1"], "--rtol must be a number"),
        (["--min-cosine", "2"], "--min-cosine must be a number in [-1, 1]"),
        (["--min-top1", "1.5"], "--min-top1 must be a number in [0, 1]"),
        (["--min-cosine", "nan"], "--min-cosine"),
    ],
)
def test_nan_and_out_of_range_gates(tiny_onnx, capsys, args, needle):
    assert_refused(run(capsys, "verify", tiny_onnx, "--reference", tiny_onnx, "--inputs", "2", *args), 2, needle)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--ratio", "nan"], "--ratio"),
        (["--ratio", "-0.5"], "--ratio"),
        (["--ratio", "1.5"], "--ratio"),
        (["--ratio", "0.3", "--target-macs", "nan"], "--target-macs must be a finite number"),
        (["--ratio", "0.3", "--target-macs", "-1"], "--target-macs"),
        (["--ratio", "0.3", "--max-group-ratio", "nan"], "--max-group-ratio"),
        (["--ratio", "0.3", "--round-to", "0"], "--round-to"),
    ],
)
def test_nan_and_out_of_range_pruning_numbers(tmp_path, capsys, args, needle):
    base = ["prune", "deit_tiny_patch16_224", "--weights", "random", "--img-size", "32"]
    assert_refused(run(capsys, *base, *args, "-o", tmp_path / "out"), 2, needle)
    assert not (tmp_path / "out").exists()


def test_pipeline_numbers(tmp_path, capsys):
    for args, needle in ((["--ratio", "nan"], "--ratio"), (["--ratio", "0.3", "--epochs", "0"], "--epochs"),
                         (["--ratio", "0.3", "--bench-iters", "1"], "--bench-iters")):
        base = ["prune-export", "deit_tiny_patch16_224", "--weights", "random", "--img-size", "32"]
        assert_refused(run(capsys, *base, *args, "-o", tmp_path / "out"), 2, needle)
        assert not (tmp_path / "out").exists()


def test_round_to_that_rounds_nothing_warns(tmp_path, capsys):
    result = run(capsys, "prune", *TINY, "--round-to", "1000", "-o", tmp_path / "out")
    assert result.code == 0, result.text
    assert "warning: --round-to 1000 divides none of the pruned widths" in result.err


def test_ignored_options_warn(tmp_path, capsys):
    result = run(capsys, "prune", *TINY, "--calib-data", "synthetic", "-o", tmp_path / "a")
    assert result.code == 0 and "warning: --calib-data is ignored" in result.err
    result = run(capsys, "prune", str(tmp_path / "a"), "--ratio", "0.2", "--img-size", "64", "-o", tmp_path / "b")
    assert "warning: --img-size ignored" in result.err
