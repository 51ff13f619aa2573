"""A real Triton Inference Server serving what ``isodeploy triton-repo`` writes.

The server is the ``nvidia-pytriton`` wheel's ``tritonserver`` (Triton 2.51) in its own cached venv, with the
Python-based onnxruntime backend of :mod:`isodeploy.serve.triton_ort_backend`; see ``tests/triton_provision.py``.
One server runs for the session in explicit model-control mode; each test writes its own model folder into
the shared repository and loads it, so the server's loader, config normalisation and dynamic batcher all
take part. Skipped only where the wheel cannot be provisioned (the reason is printed).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from isodeploy.cli import main
from isodeploy.core.errors import IsodeployError
from isodeploy.serve.triton_repo import write_triton_repo
from isodeploy.serve.triton_check import config_mismatches
from isodeploy.serve.triton_server import TritonLoadError, TritonServer
from isodeploy.serve.triton_validate import model_dir_problems, validate_model_dir

try:
    from test_tensorrt_build import export_tiny
    from test_triton_repo import write_plan
    from triton_provision import TritonUnavailable, provision
except ImportError:  # tests/ collected as a package
    from tests.test_tensorrt_build import export_tiny
    from tests.test_triton_repo import write_plan
    from tests.triton_provision import TritonUnavailable, provision

grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is a dev dependency")
httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is a dev dependency")
from tritonclient.grpc import model_config_pb2  # noqa: E402

pytestmark = pytest.mark.triton


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def triton_install(tmp_path_factory):
    try:
        install = provision(tmp_path_factory.mktemp("triton-backends") / "backends")
    except TritonUnavailable as exc:
        pytest.skip(f"no Triton server here: {exc}")
    if install.provision_seconds:
        print(f"\nprovisioned nvidia-pytriton venv in {install.provision_seconds:.1f} s: {install.venv}")
    return install


@pytest.fixture(scope="session")
def triton(triton_install, tmp_path_factory):
    repo = tmp_path_factory.mktemp("triton-repo")
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    server = TritonServer(triton_install.binary, repo, log, backend_dir=triton_install.backend_dir,
                          env=triton_install.env, extra_args=("--backend-config=python,stub-timeout-seconds=30",))
    server.start(timeout=60)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="session")
def resnet_onnx(tmp_path_factory) -> Path:
    """A real timm ResNet-18 (random weights, 32x32, 10 classes) with a dynamic batch."""
    import warnings

    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    path = tmp_path_factory.mktemp("resnet") / "resnet18.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, 32, 32),), str(path), dynamo=False, input_names=["pixels"],
                          output_names=["logits"], dynamic_axes={"pixels": {0: "b"}, "logits": {0: "b"}}, opset_version=17)
    return path


def publish(triton: TritonServer, src: Path, name: str, *extra: str) -> tuple[Path, dict]:
    """``isodeploy triton-repo SRC --name NAME -o REPO ...`` into the server's repository; returns (folder, report)."""
    report_path = triton.repo.parent / f"{name}.report.json"
    rc = main(["triton-repo", str(src), "--name", name, "-o", str(triton.repo), "--json", str(report_path), *extra])
    assert rc == 0
    return triton.repo / name, json.loads(report_path.read_text())


def onnxruntime_out(model_dir: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def infer_http(triton: TritonServer, name: str, x: np.ndarray, inp: str = "input", out: str = "logits") -> np.ndarray:
    client = httpclient.InferenceServerClient(triton.http_url)
    tensor = httpclient.InferInput(inp, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    return client.infer(name, [tensor], outputs=[httpclient.InferRequestedOutput(out, binary_data=True)]).as_numpy(out)


def infer_grpc(triton: TritonServer, name: str, x: np.ndarray, inp: str = "input", out: str = "logits") -> np.ndarray:
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    tensor = grpcclient.InferInput(inp, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer(name, [tensor]).as_numpy(out)


def _repeated(fd) -> bool:
    return fd.is_repeated if hasattr(type(fd), "is_repeated") else fd.label == fd.LABEL_REPEATED


def assert_contained(written, served, path: str = "config") -> None:
    """Every field set in the written ModelConfig has the same value in the server's (which adds defaults)."""
    for fd, value in written.ListFields():
        theirs = getattr(served, fd.name)
        where = f"{path}.{fd.name}"
        if _repeated(fd):
            assert len(theirs) == len(value), f"{where}: wrote {list(value)}, server has {list(theirs)}"
            for i, (a, b) in enumerate(zip(value, theirs)):
                if fd.type == fd.TYPE_MESSAGE:
                    assert_contained(a, b, f"{where}[{i}]")
                else:
                    assert a == b, f"{where}[{i}]: wrote {a}, server has {b}"
        elif fd.type == fd.TYPE_MESSAGE:
            assert_contained(value, theirs, where)
        else:
            assert theirs == value, f"{where}: wrote {value!r}, server has {theirs!r}"


# ---------------------------------------------------------------- serving what triton-repo writes
def test_model_becomes_ready_with_the_config_exactly_as_written(triton, tiny_onnx):
    model_dir, report = publish(triton, tiny_onnx, "tiny", "--max-batch", "8", "--preferred-batch", "2,8",
                                "--max-queue-delay-us", "300")
    triton.load("tiny")
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    http = httpclient.InferenceServerClient(triton.http_url)
    assert grpc.is_model_ready("tiny") and http.is_model_ready("tiny")
    written = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    served = grpc.get_model_config("tiny").config
    assert_contained(written, served)
    assert (served.backend, served.default_model_filename) == ("onnxruntime", "model.onnx")  # Triton's own mapping
    assert config_mismatches(report["config"], http.get_model_config("tiny")) == []  # what --check compares
    bad = dict(report["config"], preferred_batch_sizes=[4, 8])
    assert config_mismatches(bad, http.get_model_config("tiny"))  # and that comparison can fail


def test_outputs_equal_onnxruntime_for_batch_1_and_a_larger_batch_over_http_and_grpc(triton, resnet_onnx):
    model_dir, _ = publish(triton, resnet_onnx, "resnet18", "--max-batch", "16")
    triton.load("resnet18")
    rng = np.random.default_rng(0)
    for batch in (1, 7):
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        expected = onnxruntime_out(model_dir, {"pixels": x})
        for infer in (infer_http, infer_grpc):
            got = infer(triton, "resnet18", x, "pixels")
            assert got.shape == (batch, 10) and got.dtype == np.float32
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=f"{infer.__name__} batch {batch}")
    with pytest.raises(Exception, match="max|batch"):  # the server enforces max_batch_size itself
        infer_http(triton, "resnet18", np.zeros((17, 3, 32, 32), np.float32), "pixels")


def test_concurrent_requests_are_dynamically_batched(triton, tiny_onnx):
    model_dir, _ = publish(triton, tiny_onnx, "tiny_dyn", "--max-batch", "8", "--preferred-batch", "8",
                           "--max-queue-delay-us", "400000")
    triton.load("tiny_dyn")
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(8)]
    results: dict[int, np.ndarray] = {}
    done = threading.Event()

    def callback(i, result, error):
        results[i] = error if error is not None else result.as_numpy("logits")
        if len(results) == len(xs):
            done.set()

    for i, x in enumerate(xs):
        tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        client.async_infer("tiny_dyn", [tensor], callback=functools.partial(callback, i))
    assert done.wait(30), f"only {len(results)} of {len(xs)} responses arrived"
    for i, x in enumerate(xs):
        assert isinstance(results[i], np.ndarray), results[i]
        np.testing.assert_allclose(results[i], onnxruntime_out(model_dir, {"input": x}), rtol=1e-5, atol=1e-5)
    stats = client.get_inference_statistics("tiny_dyn").model_stats[0]
    sizes = {b.batch_size: b.compute_infer.count for b in stats.batch_stats}
    assert stats.inference_count == 8 and stats.execution_count < 8, (stats.inference_count, stats.execution_count)
    assert max(sizes) > 1 and sum(size * n for size, n in sizes.items()) == 8, sizes


@pytest.mark.parametrize("name, extra, max_batch", [
    ("v_max4", ["--max-batch", "4"], 4),
    ("v_pref", ["--max-batch", "16", "--preferred-batch", "4,16"], 16),
    ("v_inst2", ["--instances", "2", "--max-batch", "8"], 8),
    ("v_static", ["--static-batch", "--max-batch", "4"], 4),
])
def test_batching_variants_load_and_serve(triton, tiny_onnx, name, extra, max_batch):
    model_dir, report = publish(triton, tiny_onnx, name, *extra)
    triton.load(name)
    http = httpclient.InferenceServerClient(triton.http_url)
    served = http.get_model_config(name)
    assert config_mismatches(report["config"], served) == []
    assert served["max_batch_size"] == max_batch
    assert ("dynamic_batching" in served) == ("--static-batch" not in extra)
    x = np.random.default_rng(2).standard_normal((max_batch, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(infer_http(triton, name, x), onnxruntime_out(model_dir, {"input": x}), rtol=1e-5, atol=1e-5)
    http.unload_model(name)


def test_fixed_batch_onnx_serves_with_max_batch_size_0(triton, tmp_path):
    src = export_tiny(tmp_path / "fixed.onnx", dynamic_batch=False)
    model_dir, report = publish(triton, src, "fixed2")
    triton.load("fixed2")
    served = httpclient.InferenceServerClient(triton.http_url).get_model_config("fixed2")
    assert served["max_batch_size"] == 0 and config_mismatches(report["config"], served) == []
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(infer_grpc(triton, "fixed2", x), onnxruntime_out(model_dir, {"input": x}), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- what the server refuses, we refuse first
def _rename_folder(model_dir: Path) -> Path:
    target = model_dir.with_name(model_dir.name + "_renamed")
    model_dir.rename(target)
    return target


def _drop_version(model_dir: Path) -> Path:
    shutil.rmtree(model_dir / "1")
    return model_dir


def _preferred_above_max(model_dir: Path) -> Path:
    cfg = model_dir / "config.pbtxt"
    text = cfg.read_text()
    assert "preferred_batch_size: [ 2, 4 ]" in text
    cfg.write_text(text.replace("preferred_batch_size: [ 2, 4 ]", "preferred_batch_size: [ 2, 16 ]"))
    return model_dir


def _zero_dim(model_dir: Path) -> Path:
    cfg = model_dir / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("dims: [ 10 ]", "dims: [ 0 ]"))
    return model_dir


@pytest.mark.parametrize("break_it, ours, server_says", [
    (_rename_folder, "config.pbtxt names the model", "directory name must equal model name"),
    (_drop_version, "no numeric version folder", "at least one version must be available"),
    (_preferred_above_max, "preferred batch size 16 is above max_batch_size 4", "preferred size must be <= max batch size"),
    (_zero_dim, "each must be >= 1, or -1", "dimension must be integer >= 1, or -1"),
])
def test_hand_broken_repos_are_refused_by_our_validator_and_by_the_server(triton, tiny_onnx, capsys, break_it, ours,
                                                                          server_says):
    name = f"broken_{break_it.__name__.strip('_')}"
    good, _ = publish(triton, tiny_onnx, name, "--max-batch", "4", "--preferred-batch", "2,4")
    assert model_dir_problems(good) == []
    broken = break_it(good)
    with pytest.raises(IsodeployError, match="Triton would refuse") as refused:
        validate_model_dir(broken)
    assert ours in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(TritonLoadError) as server_refused:
        triton.load(broken.name)
    assert server_says in str(server_refused.value)
    capsys.readouterr()  # writing any other model into this repository warns about the broken one, in one line
    publish(triton, tiny_onnx, f"{name}_sibling", "--max-batch", "4")
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if broken.name + "'" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("warning:") and ours in warnings[0], warnings


def test_preferred_batch_above_max_is_refused_before_anything_is_written(triton, tiny_onnx, capsys):
    rc = main(["triton-repo", str(tiny_onnx), "--name", "pref_cli", "-o", str(triton.repo), "--max-batch", "8",
               "--preferred-batch", "4,16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "outside 1..8" in err[0] and not (triton.repo / "pref_cli").exists()


def test_plan_repository_parses_and_fails_only_at_the_missing_tensorrt_backend(triton, tmp_path):
    plan = write_plan(tmp_path / "eng", "deit.plan")
    write_triton_repo(plan, "fake_plan", triton.repo)
    assert model_dir_problems(triton.repo / "fake_plan") == []
    with pytest.raises(TritonLoadError) as refused:
        triton.load("fake_plan")
    assert "unable to find backend library for backend 'tensorrt'" in str(refused.value)
    index = {m["name"]: m for m in httpclient.InferenceServerClient(triton.http_url).get_model_repository_index()}
    # a version state exists only once the config was parsed and normalised (config errors fail earlier, at the poll)
    assert index["fake_plan"]["state"] == "UNAVAILABLE" and "tensorrt" in index["fake_plan"]["reason"]


# ---------------------------------------------------------------- triton-repo --check
def test_check_reports_ready_and_the_difference_to_onnxruntime(triton_install, tiny_onnx, tmp_path, monkeypatch, capsys):
    for key, value in triton_install.env.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    rc = main(["triton-repo", str(tiny_onnx), "--name", "checked", "-o", str(tmp_path / "my repo"), "--max-batch", "4",
               "--check", "--server", str(triton_install.binary), "--backend-dir", str(triton_install.backend_dir),
               "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "'checked' READY" in out and "max abs diff vs onnxruntime" in out
    check = json.loads((tmp_path / "r.json").read_text())["check"]
    assert check["passed"] and check["ready"] and check["config_mismatches"] == []
    assert check["server_version"] == "2.51.0" and check["max_abs_diff"] <= 1e-5
    assert check["request_shapes"] == {"input": [2, 3, 16, 16]} and check["output_shapes"] == {"logits": [2, 10]}
    assert list((tmp_path / "tmp").iterdir()) == []  # a passing check leaves no temporary folder behind


def test_check_exits_1_in_one_line_when_the_server_cannot_load_the_model(triton_install, tiny_onnx, tmp_path,
                                                                         monkeypatch, capsys):
    for key, value in triton_install.env.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    no_ort = tmp_path / "backends"  # the python backend only: no onnxruntime backend at all
    shutil.copytree(triton_install.backend_dir / "python", no_ort / "python")
    rc = main(["triton-repo", str(tiny_onnx), "--name", "unserved", "-o", str(tmp_path / "repo"), "--check",
               "--server", str(triton_install.binary), "--backend-dir", str(no_ort)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("error: Triton refused model 'unserved'") and "backend 'onnxruntime'" in err[0]
    assert list((tmp_path / "tmp").iterdir()) == []  # the check's temp folder (server log included) is removed
    assert "tritonserver.log" not in err[0]  # the error quotes the log's line, not a path that no longer exists
    assert (tmp_path / "repo" / "unserved" / "config.pbtxt").is_file()  # the repository itself stays written
