"""``isodeploy export`` on the command line: FP32 and FP16 files, JSON figures, then ``verify`` on them."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from isodeploy.cli import main

torch.set_num_threads(1)

# resnet18 takes any input size, so the CLI alone (no timm kwargs) can make it small
SMALL = ["resnet18", "--weights", "random", "--img-size", "64"]


@pytest.fixture(scope="module")
def fp16_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    out, js = folder / "r18.fp16.onnx", folder / "export.json"
    assert main(["export", *SMALL, "--precision", "fp16", "--calib-samples", "2", "-o", str(out), "--json", str(js)]) == 0
    return out, json.loads(js.read_text())


def test_cli_export_fp32_writes_onnx_and_json(tmp_path, capsys):
    out, js = tmp_path / "r18.onnx", tmp_path / "e.json"
    assert main(["export", *SMALL, "-o", str(out), "--json", str(js)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    data = json.loads(js.read_text())
    assert data["fp16"] is None
    report = data["export"]
    assert report["exporter"] == "torchscript" and report["opset"] == 17
    assert report["input_shape"] == ["batch", 3, 64, 64] and report["output_names"] == ["logits"]
    assert report["metadata"]["isodeploy.source_model"] == "resnet18"
    assert report["seconds"] > 0 and report["size_bytes"] == out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json", "r18.onnx"]  # nothing else left behind


def test_cli_export_fp16_reports_the_fp32_nodes(fp16_export):
    out, data = fp16_export
    fp16 = data["fp16"]
    assert data["export"]["precision"] == "fp16" and data["export"]["path"] == str(out)
    assert [n["op"] for n in fp16["fp32_nodes"]] == ["GlobalAveragePool"]
    assert fp16["fp32_nodes"][0]["reason"] == "block list" and fp16["calib_batches"] == 2
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["isodeploy.precision"] == "fp16"
    assert not list(out.parent.glob(".*"))  # the FP32 intermediate was a temp file


def test_cli_verify_picks_the_fp16_gates_for_an_fp16_onnx(fp16_export, tmp_path):
    out, _ = fp16_export
    js = tmp_path / "v.json"
    assert main(["verify", str(out), "--reference", "resnet18", "--weights", "random", "--img-size", "64",
                 "--inputs", "7", "--json", str(js)]) == 0
    data = json.loads(js.read_text())
    assert data["precision"] == "fp16" and data["gates"]["min_cosine"] == 0.999 and data["gates"]["atol"] is None
    assert data["sets"][0]["outputs"][0]["min_cosine"] >= 0.999
    assert data["sets"][0]["outputs"][0]["max_abs"] > 1e-6  # FP16 weights really changed the numbers
    # so FP32 gates with a tolerance below that error fail it, with exit code 1
    assert main(["verify", str(out), "--inputs", "7", "--gates", "fp32", "--atol", "1e-6", "--rtol", "1e-6"]) == 1


def test_cli_bad_options(tmp_path, capsys):
    assert main(["export", *SMALL, "--precision", "int8", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "--precision must be fp32 or fp16" in capsys.readouterr().err
    assert main(["export", *SMALL, "--exporter", "jit", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "unknown exporter 'jit'" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "x.onnx"), "--batch-sizes", "0,7"]) == 2
    assert "--batch-sizes must be positive" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
