"""Triton model repositories: every config.pbtxt is parsed with Triton's own schema and checked against the artifact."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format

from isodeploy.cli import main
from isodeploy.core.errors import IsodeployError
from isodeploy.serve.triton_repo import write_triton_repo

try:
    from test_tensorrt_build import export_tiny, sample_meta
except ImportError:  # tests/ collected as a package
    from tests.test_tensorrt_build import export_tiny, sample_meta

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] is a dev dependency")
TYPE = model_config_pb2.DataType.Value
KIND = model_config_pb2.ModelInstanceGroup.Kind.Value


def parse_config(model_dir: Path):
    """Parse config.pbtxt with Triton's ModelConfig schema (unknown fields or bad syntax raise)."""
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def onnx_io(path: Path):
    graph = onnx.load(str(path), load_external_data=False).graph
    dims = lambda vi: [d.dim_value if d.dim_value > 0 else -1 for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    return [(v.name, dims(v)) for v in graph.input], [(v.name, dims(v)) for v in graph.output]


def write_plan(folder: Path, name: str = "model.plan", **meta_over) -> Path:
    """A stand-in engine file plus metadata written by hand (a real plan needs TensorRT and a GPU)."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = folder / name
    plan.write_bytes(b"not-a-real-engine")
    digest = hashlib.sha256(plan.read_bytes()).hexdigest()
    meta = sample_meta(plan=name, plan_bytes=plan.stat().st_size, plan_sha256=digest, **meta_over).to_dict()
    (folder / f"{name}.json").write_text(json.dumps(meta))
    return plan


# ---------------------------------------------------------------- ONNX
def test_onnx_config_matches_the_graph_and_onnxruntime(tmp_path):
    import warnings

    import onnxruntime as ort
    import torch

    from isodeploy.loading import load_model

    loaded = load_model("resnet18", weights="random", img_size=64)
    src = tmp_path / "resnet18.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(loaded.model, (loaded.example_input(2),), str(src), dynamo=False, input_names=["pixels"],
                          output_names=["logits"], dynamic_axes={"pixels": {0: "b"}, "logits": {0: "b"}}, opset_version=17)
    report = write_triton_repo(src, "resnet18", tmp_path / "repo", max_batch=32)
    model_dir = tmp_path / "repo" / "resnet18"
    cfg = parse_config(model_dir)
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == ("resnet18", "onnxruntime_onnx", 32)
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, list(i.dims)) for i in cfg.input] == [(i.name, i.shape[1:]) for i in session.get_inputs()]
    assert [i.dims for i in cfg.input] == [[3, 64, 64]]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("logits", [1000])]
    assert [i.data_type for i in cfg.input] == [TYPE("TYPE_FP32")] and cfg.output[0].data_type == TYPE("TYPE_FP32")
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 32]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(KIND("KIND_CPU"), 1)]
    assert (model_dir / "1" / "model.onnx").read_bytes() == src.read_bytes()
    assert report.files == ["1/model.onnx", "config.pbtxt"] and report.unchanged is False
    out = session.run(None, {"pixels": np.zeros((3, 3, 64, 64), np.float32)})[0]  # the served file runs at batch 3
    assert out.shape == (3, 1000)


def test_onnx_on_gpu_with_custom_batching_and_external_data(tmp_path):
    src = export_tiny(tmp_path / "m.onnx")
    model = onnx.load(str(src))
    ext = tmp_path / "ext" / "big.onnx"
    ext.parent.mkdir()
    onnx.save(model, str(ext), save_as_external_data=True, location="big.onnx.data", size_threshold=0)
    write_triton_repo(ext, "big", tmp_path / "repo", device="gpu", max_batch=16, preferred_batch_sizes=[4, 16, 4],
                      max_queue_delay_us=500, instance_count=2)
    model_dir = tmp_path / "repo" / "big"
    cfg = parse_config(model_dir)
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(KIND("KIND_GPU"), 2)]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 16]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert (model_dir / "1" / "big.onnx.data").read_bytes() == (ext.parent / "big.onnx.data").read_bytes()
    ins, outs = onnx_io(ext)
    assert [(i.name, [-1, *i.dims]) for i in cfg.input] == ins
    assert [(o.name, [-1, *o.dims]) for o in cfg.output] == outs
    reloaded = onnx.load(str(model_dir / "1" / "model.onnx"))  # external weights found beside the copied model
    assert len(reloaded.graph.initializer) == len(model.graph.initializer)


def test_fixed_batch_onnx_gets_max_batch_size_0_and_full_dims(tmp_path):
    src = export_tiny(tmp_path / "m.onnx", dynamic_batch=False)
    write_triton_repo(src, "fixed", tmp_path / "repo")
    cfg = parse_config(tmp_path / "repo" / "fixed")
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert [list(i.dims) for i in cfg.input] == [[2, 3, 16, 16]] and [list(o.dims) for o in cfg.output] == [[2, 10]]
    with pytest.raises(IsodeployError, match="fixed batch dim, so --max-batch cannot apply"):
        write_triton_repo(src, "fixed2", tmp_path / "repo", max_batch=8)


# ---------------------------------------------------------------- TensorRT plans (metadata written by hand)
def test_plan_config_reads_names_types_shapes_and_profile_from_the_metadata(tmp_path):
    plan = write_plan(tmp_path / "eng", "deit.plan")
    meta = json.loads((tmp_path / "eng" / "deit.plan.json").read_text())
    report = write_triton_repo(plan, "deit_small-v1.2", tmp_path / "repo")
    model_dir = tmp_path / "repo" / "deit_small-v1.2"
    cfg = parse_config(model_dir)
    assert (cfg.platform, cfg.max_batch_size) == ("tensorrt_plan", meta["profile"][0]["max"][0])
    assert [(i.name, [-1, *i.dims]) for i in cfg.input] == [(t["name"], t["shape"]) for t in meta["inputs"]]
    assert [(o.name, [-1, *o.dims]) for o in cfg.output] == [(t["name"], t["shape"]) for t in meta["outputs"]]
    assert cfg.input[0].data_type == TYPE("TYPE_FP32")
    assert list(cfg.dynamic_batching.preferred_batch_size) == [meta["profile"][0]["opt"][0], 256]
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(KIND("KIND_GPU"), 1)]
    assert (model_dir / "1" / "model.plan").read_bytes() == plan.read_bytes()
    copied = json.loads((model_dir / "1" / "model.plan.json").read_text())
    assert copied["plan"] == "model.plan" and copied["tensorrt_version"] == meta["tensorrt_version"]
    assert report.files == ["1/model.plan", "1/model.plan.json", "config.pbtxt"]
    assert "--gpus all" in report.serve_command


def test_plan_with_fp16_io_smaller_max_batch_and_scalar_output(tmp_path):
    from isodeploy.runtime.trt.meta import TensorMeta

    plan = write_plan(tmp_path, inputs=[TensorMeta("x", "float16", [-1, 3, 32, 32])],
                      outputs=[TensorMeta("logits", "float16", [-1, 10]), TensorMeta("score", "int32", [-1])])
    write_triton_repo(plan, "m", tmp_path / "repo", max_batch=64)
    cfg = parse_config(tmp_path / "repo" / "m")
    assert cfg.max_batch_size == 64 and list(cfg.dynamic_batching.preferred_batch_size) == [8, 64]
    assert [(o.name, o.data_type, list(o.dims)) for o in cfg.output] == [
        ("logits", TYPE("TYPE_FP16"), [10]), ("score", TYPE("TYPE_INT32"), [1])]
    assert cfg.output[1].HasField("reshape") and list(cfg.output[1].reshape.shape) == []


def test_plan_errors(tmp_path):
    plan = write_plan(tmp_path)
    with pytest.raises(IsodeployError, match="--max-batch 512 is outside 1..256"):
        write_triton_repo(plan, "m", tmp_path / "repo", max_batch=512)
    with pytest.raises(IsodeployError, match="runs only on a GPU"):
        write_triton_repo(plan, "m", tmp_path / "repo", device="cpu")
    from isodeploy.export.trt.onnx_prep import ProfileShape

    late = write_plan(tmp_path / "late", profile=[ProfileShape("input", [4, 3, 224, 224], [8, 3, 224, 224], [64, 3, 224, 224])])
    with pytest.raises(IsodeployError, match="profile starting at batch 4.*--min-batch 1"):
        write_triton_repo(late, "m", tmp_path / "repo")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "x.plan").write_bytes(b"engine")
    with pytest.raises(IsodeployError, match="x.plan.json' is missing"):
        write_triton_repo(tmp_path / "bare" / "x.plan", "m", tmp_path / "repo")
    assert not (tmp_path / "repo").exists()  # nothing written on any failure


# ---------------------------------------------------------------- names, existing folders, atomicity, CLI
@pytest.mark.parametrize("name", ["bad/name", "..", ".hidden", "a b", "", "x" * 129, "na\u00efve", "tiny\n", "ok\nbad"])
def test_illegal_model_names_are_refused(tmp_path, name):
    with pytest.raises(IsodeployError, match="illegal characters"):
        write_triton_repo(write_plan(tmp_path), name, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_existing_folder_same_model_is_a_no_op_different_model_is_refused(tmp_path):
    a = export_tiny(tmp_path / "a.onnx")
    b = export_tiny(tmp_path / "b.onnx", hw=20)
    repo = tmp_path / "repo"
    write_triton_repo(a, "m", repo)
    stamp = os.stat(repo / "m" / "config.pbtxt").st_mtime_ns
    assert write_triton_repo(a, "m", repo).unchanged is True
    assert os.stat(repo / "m" / "config.pbtxt").st_mtime_ns == stamp
    with pytest.raises(IsodeployError, match="already holds a different model.*--force"):
        write_triton_repo(b, "m", repo)
    with pytest.raises(IsodeployError, match="already holds a different model"):
        write_triton_repo(a, "m", repo, max_batch=8)  # same file, different config
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == a.read_bytes()
    write_triton_repo(b, "m", repo, force=True)
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == b.read_bytes()
    assert list(parse_config(repo / "m").input[0].dims) == [3, 20, 20]
    assert sorted(p.name for p in repo.iterdir()) == ["m"]  # no staging or old folders left behind
    assert (repo / "m").stat().st_mode & 0o755 == 0o755  # readable by a server running as another user


def test_cli_writes_json_and_fails_in_one_line(tmp_path, capsys):
    src = export_tiny(tmp_path / "m.onnx")
    rc = main(["triton-repo", str(src), "--name", "tiny", "-o", str(tmp_path / "repo"), "--preferred-batch", "2,4",
               "--max-batch", "4", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["platform"] == "onnxruntime_onnx" and report["max_batch_size"] == 4
    assert list(parse_config(tmp_path / "repo" / "tiny").dynamic_batching.preferred_batch_size) == [2, 4]
    capsys.readouterr()
    cases = [
        (["--name", "a:b"], "illegal characters"),
        (["--name", "tiny", "--max-batch", "8"], "already holds a different model"),
        (["--name", "t2", "--preferred-batch", "2,x"], "comma-separated integers"),
        (["--name", "t2", "--preferred-batch", "128"], "outside 1..64"),
        (["--name", "t2", "--device", "tpu"], "unknown --device 'tpu'"),
    ]
    for extra, message in cases:
        assert main(["triton-repo", str(src), "-o", str(tmp_path / "repo"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert main(["triton-repo", str(tmp_path / "m.txt"), "--name", "x", "-o", str(tmp_path / "repo")]) == 2
    assert "neither a .plan" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["tiny"]


# ---------------------------------------------------------------- untrusted files (issue: symlinks, tampered plans)
def test_symlinked_external_data_is_refused_never_copied(tmp_path, capsys):
    src = export_tiny(tmp_path / "m.onnx")
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save(onnx.load(str(src)), str(folder / "big.onnx"), save_as_external_data=True, location="big.onnx.data",
              size_threshold=0)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (folder / "big.onnx.data").unlink()
    (folder / "big.onnx.data").symlink_to(secret)
    rc = main(["triton-repo", str(folder / "big.onnx"), "--name", "big", "-o", str(tmp_path / "repo")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "behind a symbolic link" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "repo").exists()
    # a linked folder on the way to the data is refused the same way
    real = tmp_path / "weights"
    real.mkdir()
    (folder / "w").mkdir()
    onnx.save(onnx.load(str(src)), str(folder / "sub.onnx"), save_as_external_data=True, location="w/sub.data",
              size_threshold=0)
    (folder / "w" / "sub.data").rename(real / "sub.data")
    (folder / "w").rmdir()
    (folder / "w").symlink_to(real, target_is_directory=True)
    with pytest.raises(IsodeployError, match="behind a symbolic link"):
        write_triton_repo(folder / "sub.onnx", "sub", tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("tamper, message", [
    (lambda p: p.write_bytes(b"a-different-engine!"), "bytes but its .plan.json records"),
    (lambda p: p.write_bytes(b"not-a-real-engine".upper()), "does not match the sha256"),
])
def test_plan_that_does_not_match_its_metadata_is_refused(tmp_path, capsys, tamper, message):
    plan = write_plan(tmp_path / "eng")
    tamper(plan)
    rc = main(["triton-repo", str(plan), "--name", "m", "-o", str(tmp_path / "repo")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0] and "build-engine" in err[0]
    assert not (tmp_path / "repo").exists()


def test_docker_line_is_shell_quoted_for_paths_with_spaces(tmp_path):
    repo = tmp_path / "my models; rm -rf x"
    report = write_triton_repo(export_tiny(tmp_path / "m.onnx"), "m", repo)
    words = shlex.split(report.serve_command)
    assert words[words.index("-v") + 1] == f"{repo.resolve()}:/models"
    assert words[-2:] == ["tritonserver", "--model-repository=/models"]


def test_static_batch_drops_the_dynamic_batcher(tmp_path):
    src = export_tiny(tmp_path / "m.onnx")
    report = write_triton_repo(src, "s", tmp_path / "repo", max_batch=4, dynamic_batching=False)
    cfg = parse_config(tmp_path / "repo" / "s")
    assert cfg.max_batch_size == 4 and not cfg.HasField("dynamic_batching")
    assert report.config["dynamic_batching"] is False and report.config["preferred_batch_sizes"] == []
    with pytest.raises(IsodeployError, match="--static-batch turns off"):
        write_triton_repo(src, "s2", tmp_path / "repo", preferred_batch_sizes=[2], dynamic_batching=False)


# ---------------------------------------------------------------- what Triton refuses (the real server runs these too:
# tests/test_triton_server.py); here the validator alone, so they run without a server
def _good(tmp_path) -> Path:
    write_triton_repo(export_tiny(tmp_path / "m.onnx"), "good", tmp_path / "repo", max_batch=4, preferred_batch_sizes=[2, 4])
    return tmp_path / "repo" / "good"


def _edit(model_dir: Path, old: str, new: str) -> Path:
    cfg = model_dir / "config.pbtxt"
    text = cfg.read_text()
    assert old in text, text
    cfg.write_text(text.replace(old, new))
    return model_dir


@pytest.mark.parametrize("break_it, message", [
    (lambda d: d.rename(d.with_name("other")), "config.pbtxt names the model 'good'"),
    (lambda d: shutil.rmtree(d / "1") or d, "no numeric version folder"),
    (lambda d: (d / "1").rename(d / "v1") and d, "no numeric version folder"),
    (lambda d: (d / "1" / "model.onnx").unlink() or d, "1/ has no model.onnx"),
    (lambda d: _edit(d, "[ 2, 4 ]", "[ 2, 16 ]"), "preferred batch size 16 is above max_batch_size 4"),
    (lambda d: _edit(d, "[ 2, 4 ]", "[ 0, 4 ]"), "preferred batch size 0 must be positive"),
    (lambda d: _edit(d, "max_batch_size: 4", "max_batch_size: 0"), "above max_batch_size 0"),
    (lambda d: _edit(d, "dims: [ 10 ]", "dims: [ 0 ]"), "each must be >= 1, or -1"),
    (lambda d: _edit(d, "dims: [ 10 ]", "dims: [ 10 ]\n    reshape: { shape: [ 3 ] }"), "another element count"),
    (lambda d: _edit(d, "data_type: TYPE_FP32", "data_type: TYPE_FLOAT"), "not a Triton type"),
    (lambda d: _edit(d, "kind: KIND_CPU", "kind: KIND_TPU"), "instance_group kind"),
    (lambda d: _edit(d, "max_batch_size: 4", "max_batch_size: 4\nmax_batch: 4"), "unknown field 'max_batch'"),
    (lambda d: _edit(d, "max_batch_size: 4", "max_batch_size: {"), "config.pbtxt"),
    (lambda d: (d / "config.pbtxt").unlink() or d, "config.pbtxt is missing"),
])
def test_validator_refuses_what_triton_refuses_in_one_line(tmp_path, break_it, message):
    from isodeploy.serve.triton_validate import model_dir_problems, validate_model_dir

    good = _good(tmp_path)
    assert model_dir_problems(good) == []
    broken = break_it(good)
    with pytest.raises(IsodeployError, match="Triton would refuse") as refused:
        validate_model_dir(broken)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_writing_next_to_a_broken_model_warns_once_and_still_writes(tmp_path, capsys):
    good = _good(tmp_path)
    shutil.rmtree(good / "1")
    rc = main(["triton-repo", str(tmp_path / "m.onnx"), "--name", "fresh", "-o", str(tmp_path / "repo")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 0 and (tmp_path / "repo" / "fresh" / "config.pbtxt").is_file()
    assert len(err) == 1 and err[0].startswith("warning:") and "good' would be refused by Triton" in err[0]


def test_every_written_config_passes_the_validator_and_parses_back(tmp_path):
    from isodeploy.serve.pbtxt import parse_pbtxt
    from isodeploy.serve.triton_validate import model_dir_problems

    from isodeploy.runtime.trt.meta import TensorMeta

    plan = write_plan(tmp_path / "p", inputs=[TensorMeta("x", "float16", [-1, 3, 32, 32])],
                      outputs=[TensorMeta("logits", "float16", [-1, 10]), TensorMeta("score", "int32", [-1])])
    write_triton_repo(plan, "p", tmp_path / "repo", max_batch=64)
    write_triton_repo(export_tiny(tmp_path / "f.onnx", dynamic_batch=False), "f", tmp_path / "repo")
    for name in ("p", "f"):
        assert model_dir_problems(tmp_path / "repo" / name) == []
    parsed = parse_pbtxt((tmp_path / "repo" / "p" / "config.pbtxt").read_text())
    assert parsed["output"][1]["reshape"] == [{"shape": []}] and parsed["max_batch_size"] == [64]


# ---------------------------------------------------------------- --check without a server
def test_check_without_a_server_exits_2_in_one_line_before_writing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("ISODEPLOY_TRITONSERVER", raising=False)
    src = export_tiny(tmp_path / "m.onnx")
    rc = main(["triton-repo", str(src), "--name", "m", "-o", str(tmp_path / "repo"), "--check"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no 'tritonserver' on PATH" in err[0] and "--server" in err[0]
    assert not (tmp_path / "repo").exists()
    monkeypatch.setenv("ISODEPLOY_TRITONSERVER", str(tmp_path / "nope"))
    assert main(["triton-repo", str(src), "--name", "m", "-o", str(tmp_path / "repo"), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "$ISODEPLOY_TRITONSERVER" in err[0] and "not an executable file" in err[0]
    import sys

    assert main(["triton-repo", str(src), "--name", "m", "-o", str(tmp_path / "repo"), "--check", "--server", sys.executable,
                 "--backend-dir", str(tmp_path / "no-backends")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backend folder" in err[0] and "does not exist" in err[0]
    assert not (tmp_path / "repo").exists()
