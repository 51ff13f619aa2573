"""``verify``: statistics on hand-made arrays, gates that fail when they should, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from isodeploy.cli import main
from isodeploy.core.errors import IsodeployError
from isodeploy.core.inputs import random_samples, to_batches
from isodeploy.export.onnx import export_onnx
from isodeploy.export.verify import Gates, verify
from isodeploy.export.verify_stats import output_stats
from isodeploy.loading import load_model

torch.set_num_threads(1)


class ArrayRunner:
    """A runner that returns fixed arrays: lets the gate logic be tested on exact numbers."""

    def __init__(self, name: str, outputs: list[np.ndarray]) -> None:
        self.name, self.input_names, self.output_names = name, ["input"], ["logits"]
        self._outputs = iter(outputs)

    def run(self, feeds):
        return [next(self._outputs)]


# ---------------------------------------------------------------- statistics on exact numbers


def test_stats_on_hand_made_arrays():
    ref = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]])
    cand = ref.copy()
    cand[1, 3] += 0.01  # one element off by 0.01
    s = output_stats("logits", [cand], [ref], atol=1e-4, rtol=1e-3)
    assert s.max_abs == pytest.approx(0.01)
    assert s.mean_abs == pytest.approx(0.01 / 8)
    assert s.max_rel == pytest.approx(0.01 / 2.0)
    assert s.outside_tolerance == 1
    assert s.worst.sample == 1 and s.worst.index == [3]
    assert s.worst.candidate == pytest.approx(2.01) and s.worst.reference == pytest.approx(2.0)
    assert s.top1_agreement == 1.0 and s.top5_overlap == 1.0
    assert s.min_cosine == pytest.approx(float(cand[1] @ ref[1] / np.linalg.norm(cand[1]) / np.linalg.norm(ref[1])))


def test_a_near_zero_element_of_a_huge_sample_is_judged_on_the_sample_scale():
    """MobileOne under random weights: logits ~1e13, and a -3.8e9 logit (a cancellation of huge terms) differs
    by ~4e6 between torch and onnxruntime, FP32 noise of the terms (both are within 7e-7 of the scale from
    float64). That passes; an error of 1e-4 of the sample's scale (a real one) still fails."""
    ref = np.array([[2.4e13, -3.780e9, 1.0e13, 5.0], [1.0, 2.0, 3.0, 4.0]])
    noisy = ref.copy()
    noisy[0, 1] = -3.7757e9
    s = output_stats("logits", [noisy], [ref], atol=1e-4, rtol=1e-3)
    assert s.outside_tolerance == 0 and s.max_rel < 1e-3
    wrong = ref.copy()
    wrong[0, 1] += 2.4e9
    assert output_stats("logits", [wrong], [ref], atol=1e-4, rtol=1e-3).outside_tolerance == 1
    small = ref.copy()
    small[1, 0] += 0.01  # the floor is per sample: the huge row lends the small one no tolerance
    assert output_stats("logits", [small], [ref], atol=1e-4, rtol=1e-3).outside_tolerance == 1


def test_worst_element_is_located_across_batches():
    refs = [np.zeros((1, 5)), np.zeros((3, 5))]
    cands = [np.zeros((1, 5)), np.zeros((3, 5))]
    cands[1][2, 4] = 0.5
    s = output_stats("logits", cands, refs, atol=1e-4, rtol=1e-3)
    assert (s.worst.batch, s.worst.batch_size, s.worst.sample, s.worst.index) == (1, 3, 2, [4])
    assert s.max_abs_by_batch_size == {"1": 0.0, "3": 0.5}
    assert "worst element [4] of sample 2 in batch 1 (batch size 3)" in s.worst.describe("logits")


def test_top1_flip_counts_unless_it_is_a_tie():
    ref = np.array([[1.0, 0.99995, 0.0], [3.0, 1.0, 0.0]])
    cand = np.array([[0.99990, 0.99996, 0.0], [1.0, 3.0, 0.0]])
    s = output_stats("logits", [cand], [ref], atol=1e-4, rtol=1e-3)
    assert s.top1_agreement == 0.5  # row 0 is a tie within tolerance, row 1 a real flip
    ungated = output_stats("logits", [cand], [ref], atol=None, rtol=None, tie_rtol=0.0)
    assert ungated.top1_agreement == 0.0 and ungated.outside_tolerance is None


def test_nan_in_candidate_fails_every_gate():
    ref = np.ones((2, 4))
    cand = ref.copy()
    cand[0, 1] = np.nan
    report = verify(ArrayRunner("cand", [cand]), ArrayRunner("ref", [ref]), [np.zeros((2, 1))], Gates.fp16())
    assert not report.passed
    stats = report.outputs[0]
    assert stats.nonfinite == 1 and stats.min_cosine == -1.0
    assert "NaN/inf" in report.failures[0] and "worst element [1] of sample 0" in report.failures[0]
    assert json.dumps(report.to_dict())  # NaN/inf become null: strict JSON


def test_fp16_gates_pass_small_noise_and_fail_large_noise():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((100, 50)) * 5
    small = ref + rng.standard_normal(ref.shape) * 1e-3
    large = ref + rng.standard_normal(ref.shape) * 1.0
    assert verify(ArrayRunner("c", [small]), ArrayRunner("r", [ref]), [np.zeros((100, 1))], Gates.fp16()).passed
    bad = verify(ArrayRunner("c", [large]), ArrayRunner("r", [ref]), [np.zeros((100, 1))], Gates.fp16())
    assert not bad.passed and any("cosine" in f for f in bad.failures)
    # the same small noise fails the (much tighter) FP32 gates
    assert not verify(ArrayRunner("c", [small]), ArrayRunner("r", [ref]), [np.zeros((100, 1))], Gates.fp32()).passed


def test_gate_overrides_and_shape_mismatch():
    gates = Gates.fp16().override(atol=0.5)
    assert gates.atol == 0.5 and gates.min_cosine == 0.999 and gates.name == "fp16+custom"
    with pytest.raises(IsodeployError, match=r"shape \[2, 10\] from the candidate but \[2, 1000\]"):
        verify(ArrayRunner("c", [np.zeros((2, 10))]), ArrayRunner("r", [np.zeros((2, 1000))]), [np.zeros((2, 1))], Gates.fp32())


def test_batches_have_exactly_the_asked_sizes():
    batches = to_batches(random_samples(4, (2,)), [1, 7])
    assert [len(b) for b in batches] == [1, 1, 1, 1, 7]
    np.testing.assert_array_equal(batches[-1][4:], batches[-1][:3])  # batch 7 wraps around the 4 samples


# ---------------------------------------------------------------- the CLI on a real exported model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny DeiT exported once; the CLI rebuilds it from the ONNX metadata (random weights, seed 0)."""
    folder = tmp_path_factory.mktemp("verify")
    loaded = load_model("deit_tiny_patch16_224", weights="random", img_size=32, patch_size=8, depth=2)
    export_onnx(loaded, folder / "deit.onnx")
    return folder / "deit.onnx"


def test_cli_verify_passes_and_writes_json(exported, tmp_path, capsys):
    out = tmp_path / "v.json"
    assert main(["verify", str(exported), "--inputs", "7", "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "verify passed" in text and "max |err| by batch size: batch 1:" in text
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["precision"] == "fp32" and data["gates"]["atol"] == 1e-4
    (stats,) = data["sets"][0]["outputs"]
    assert data["sets"][0]["batch_sizes"] == [1, 7]
    assert 0 < stats["max_abs"] < 1e-4 and stats["top1_agreement"] == 1.0
    assert set(stats) >= {"mean_abs", "p99_abs", "max_rel", "min_cosine", "top5_overlap", "worst"}


def test_cli_verify_on_real_images_too(exported, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "v.json"
    assert main(["verify", str(exported), "--inputs", "3", "--data", str(images), "--json", str(out)]) == 0
    sets = json.loads(out.read_text())["sets"]
    assert [s["label"] for s in sets] == ["random", "images"] and sets[1]["inputs"]["samples"] == 3


def test_cli_verify_with_the_typed_reference_evaluator(exported, tmp_path):
    out = tmp_path / "v.json"
    assert main(["verify", str(exported), "--runtime", "reference", "--inputs", "2", "--batch-sizes", "2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["passed"] and data["sets"][0]["candidate"].startswith("onnx-reference:")


def test_cli_verify_against_an_onnx_reference(exported):
    assert main(["verify", str(exported), "--reference", str(exported), "--inputs", "2", "--atol", "0", "--rtol", "0"]) == 0


def test_perturbed_weight_fails_with_nonzero_exit_naming_the_worst_element(exported, tmp_path, capsys):
    model = onnx.load(str(exported))
    head = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if len(t.dims) == 2 else 0)
    weights = numpy_helper.to_array(head).copy()
    weights.flat[0] += 0.5  # one weight of the largest matrix
    head.CopyFrom(numpy_helper.from_array(weights, head.name))
    bad = tmp_path / "perturbed.onnx"
    onnx.save(model, str(bad))
    out = tmp_path / "v.json"
    code = main(["verify", str(bad), "--inputs", "4", "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: verify failed (fp32 gates, random inputs): output 'logits'")
    assert "worst element [" in err and "candidate" in err and "reference" in err
    assert len(err.strip().splitlines()) == 1
    assert json.loads(out.read_text())["passed"] is False  # the figures are written even on failure


def test_bad_input_missing_file(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope.onnx"), "--reference", "resnet18"]) == 2
    assert capsys.readouterr().err.strip() == f"error: ONNX file '{tmp_path / 'nope.onnx'}' does not exist"


def test_bad_input_not_an_onnx_file(tmp_path, capsys):
    fake = tmp_path / "fake.onnx"
    fake.write_text("this is not a protobuf, just some text\n" * 10)
    assert main(["verify", str(fake), "--reference", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "is not a valid ONNX file" in err and len(err.strip().splitlines()) == 1


def test_bad_input_truncated_onnx(exported, tmp_path, capsys):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    assert main(["verify", str(cut)]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and len(err.strip().splitlines()) == 1


def test_bad_input_shape_mismatch(exported, capsys):
    code = main(["verify", str(exported), "--reference", "deit_tiny_patch16_224", "--weights", "random", "--img-size", "64"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: input shape mismatch: '{exported}' takes 3x32x32 but the reference 'deit_tiny_patch16_224' "
                   "expects 3x64x64; pass --img-size 32")


def test_bad_input_unknown_artifact_type(tmp_path, capsys):
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    assert main(["verify", str(other), "--reference", "resnet18"]) == 2
    assert "unknown artifact type '.pt'" in capsys.readouterr().err


def test_bad_input_opset_below_17_via_the_cli(tmp_path, capsys):
    assert main(["export", "resnet18", "--weights", "random", "--opset", "13", "-o", str(tmp_path / "r.onnx")]) == 2
    assert "--opset 13 is below 17" in capsys.readouterr().err
    assert not (tmp_path / "r.onnx").exists()


def test_cli_exit_code_through_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "isodeploy", "verify", str(tmp_path / "missing.onnx")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: ONNX file '{tmp_path / 'missing.onnx'}' does not exist"
    assert "Traceback" not in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
def test_cuda_torch_reference_is_true_fp32(exported):
    """On a GPU the PyTorch reference must not use TF32 (cuDNN's default): it still meets the FP32 gates."""
    from isodeploy.export.runners import OrtRunner, TorchRunner

    loaded = load_model("deit_tiny_patch16_224", weights="random", img_size=32, patch_size=8, depth=2)
    report = verify(OrtRunner(exported, threads=1), TorchRunner(loaded.model, device="cuda"),
                    to_batches(random_samples(7, loaded.input_size), [1, 7]), Gates.fp32())
    assert report.passed, report.failures
