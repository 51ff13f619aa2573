"""Reliability round 3 (issue 21, §6 and §7): no tracebacks anywhere, and the everyday mistakes.

Every JSON isodeploy reads goes through one bounded reader (isodeploy/core/jsonread.py); every
Python API argument through one check (isodeploy/core/api_args.py). Each case here is a one-line
repro of the catalogue that failed before its fix.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from reliability_check import TINY, assert_refused, exported, pruned, run, snapshot  # noqa: F401 - fixtures

from isodeploy.cli import main
from isodeploy.core.ownership import OWNER_FILE

DEEP = "[" * 100000 + "]" * 100000  # Python's parser raises RecursionError on this




@pytest.fixture(scope="module")
def baseline(exported, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "base.json"
    assert main(["bench", str(exported), "--runtime", "ort", "--iters", "3", "--warmup", "1", "--no-memory", "--json", str(out)]) == 0
    return out


BENCH = ["--runtime", "ort", "--iters", "3", "--warmup", "1", "--no-memory"]


# ---------------------------------------------------------------- §6 one bounded JSON reader
def test_deeply_nested_json_is_one_line_everywhere(pruned, exported, tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    folder = tmp_path / "folder"
    shutil.copytree(pruned, folder)
    (folder / "isodeploy.json").write_text(DEEP)
    for args in (["export", folder, "-o", tmp_path / "x.onnx"], ["compare", deep], ["bench", exported, *BENCH, "--baseline", deep]):
        line = assert_refused(run(capsys, *args), 2, "nests JSON deeper than")
        assert str(deep if args[0] != "export" else folder / "isodeploy.json") in line
    assert not (tmp_path / "x.onnx").exists()


def test_a_deep_engine_metadata_file_is_one_line(tmp_path, capsys):
    plan = tmp_path / "e.plan"
    plan.write_bytes(b"not an engine")
    Path(str(plan) + ".json").write_text(DEEP)
    assert_refused(run(capsys, "triton-repo", plan, "--name", "m", "-o", tmp_path / "repo"), 2, "nests JSON deeper than")
    assert_refused(run(capsys, "compare", plan), 2, "nests JSON deeper than")
    assert not (tmp_path / "repo").exists()


def test_a_deep_marker_or_stage_record_only_causes_a_rerun(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["prune-export", *TINY, "--no-bench", "-o", out]
    assert run(capsys, *args).code == 0
    (out / OWNER_FILE).write_text(DEEP)
    result = run(capsys, *args)
    assert result.code == 0 and "Traceback" not in result.text, result.text[-2000:]
    assert json.loads((out / OWNER_FILE).read_text())["files"]  # rewritten as a real marker


def test_moderately_deep_json_that_python_parses_is_refused_too(tmp_path, capsys):
    """500 levels parse, but break every recursive consumer later: the reader bounds depth itself."""
    from isodeploy.core.jsonread import MAX_DEPTH, JsonError, parse_json

    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH, "x") is not None
    with pytest.raises(JsonError, match="deeper than"):
        parse_json("[" * 500 + "]" * 500, "x")
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"schema": "x", "results": [], "env": {"a": json.loads("[" * 500 + "]" * 500)}}))
    assert_refused(run(capsys, "compare", report), 2, "deeper than")


# ---------------------------------------------------------------- §6 damaged baselines
def _damaged(baseline: Path, tmp_path: Path, how: str) -> Path:
    report = json.loads(baseline.read_text())
    if how == "latency text":
        report["results"][0]["latency"] = "x"
    elif how == "results text":
        report["results"] = "x"
    elif how == "result text":
        report["results"][0] = "x"
    elif how == "memory list":
        report["results"][0]["memory"] = [1]
    elif how == "env text":
        report["env"] = "x"
    elif how == "notes object":
        report["notes"] = {"a": 1}
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(report))
    return path


DAMAGES = ["latency text", "results text", "result text", "memory list", "env text", "notes object"]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_baseline_is_one_line_in_bench_and_compare(exported, baseline, tmp_path, capsys, how):
    damaged = _damaged(baseline, tmp_path, how)
    assert_refused(run(capsys, "compare", damaged), 2, "damaged bench report")
    result = run(capsys, "bench", exported, *BENCH, "--baseline", damaged)
    assert_refused(result, 2, "damaged bench report")
    assert "p50" not in result.out  # refused before measuring


# ---------------------------------------------------------------- §6 triton-repo --check, off-spec server
def _tiny_onnx(folder: Path) -> Path:
    """logits[i] = sum of sample i's inputs, 10 times: what tests/fake_triton.py computes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((10, 3 * 8 * 8), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Gemm", ["flat", "w"], ["logits"], transB=1)], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], [weight])
    path = folder / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture()
def fake_triton(tmp_path, monkeypatch, capsys):
    """(onnx, args of a `triton-repo --check` against tests/fake_triton.py, set_mode)."""
    onnx_path = _tiny_onnx(tmp_path)
    args = ["triton-repo", onnx_path, "--name", "tiny", "-o", tmp_path / "repo", "--max-batch", "4"]
    assert run(capsys, *args, "--json", tmp_path / "written.json").code == 0
    written = json.loads((tmp_path / "written.json").read_text())["config"]
    served = {"name": written["name"], "platform": written["platform"], "max_batch_size": written["max_batch_size"],
              "input": [{"name": t["name"], "data_type": t["data_type"], "dims": [str(d) for d in t["dims"]]} for t in written["inputs"]],
              "output": [{"name": t["name"], "data_type": t["data_type"], "dims": [str(d) for d in t["dims"]]} for t in written["outputs"]],
              "dynamic_batching": {"preferred_batch_size": written["preferred_batch_sizes"],
                                   "max_queue_delay_microseconds": str(written["max_queue_delay_us"])},
              "instance_group": [{"kind": written["instance_kind"], "count": written["instance_count"]}]}
    (tmp_path / "served.json").write_text(json.dumps(served))
    server = tmp_path / "tritonserver"
    server.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                      "runpy.run_module('fake_triton', run_name='__main__')\n")
    server.chmod(0o755)
    monkeypatch.setenv("FAKE_TRITON_CONFIG", str(tmp_path / "served.json"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a failed check keeps its log folder: here
    return [*args, "--check", "--server", server], lambda mode: monkeypatch.setenv("FAKE_TRITON_MODE", mode)


def test_the_fake_server_passes_when_it_answers_to_spec(fake_triton, capsys):
    args, mode = fake_triton
    for good in ("good", "version_html"):  # the version is only shown: an odd reply there is '?'
        mode(good)
        result = run(capsys, *args)
        assert result.code == 0, result.text[-2000:]
        assert "'tiny' READY" in result.out


@pytest.mark.parametrize("how,needle", [
    ("config_html", "is not valid JSON"),
    ("config_list", "is a JSON list, not a model config object"),
    ("config_dims_text", "config of 'tiny' is off-spec"),
    ("bf16", "datatype 'BF16', which isodeploy cannot compare"),
    ("no_dtype", "has no datatype"),
    ("wrong_shape", "shape [2, 99] of FP32 needs 792"),
    ("header_size", "declares a JSON header of abc bytes"),
    ("no_output", "has no output 'logits'"),
])
def test_off_spec_triton_replies_are_one_line(fake_triton, capsys, how, needle):
    args, mode = fake_triton
    mode(how)
    line = assert_refused(run(capsys, *args), 1, needle)
    assert "KServe v2" in line


# ---------------------------------------------------------------- §6 data-dependent shapes
def test_a_data_dependent_shape_is_frozen_and_reported_not_a_guard_error(tmp_path, capsys):
    import torch
    from round3_models import DataDependent

    import isodeploy

    torch.manual_seed(0)
    model, x = DataDependent().eval(), torch.randn(2, 3, 16, 16)
    grouping = isodeploy.analyze(model, x)
    reasons = {u["param"]: u["reason"] for u in grouping.to_json()["unprunable"]}
    assert "data-dependent size" in reasons["fc.weight:1"] and "slice" in reasons["fc.weight:1"]
    assert [c.signature for c in grouping.classes] == ["conv→relu→conv"]  # what does not cross it still prunes
    result = isodeploy.prune(model, x, ratio=0.5)
    assert result.model(x).shape == (2, 10) and result.model.conv1.out_channels == 8
    factory = ["round3_models:data_dependent", "--weights", "random", "--img-size", "16"]
    result = run(capsys, "groups", *factory)
    assert result.code == 0 and "data-dependent size" in " ".join(result.out.split()), result.text[-2000:]
    result = run(capsys, "prune", *factory, "--ratio", "0.5", "-o", tmp_path / "o")
    assert result.code == 0, result.text[-2000:]
    assert (tmp_path / "o" / "model.safetensors").is_file()


# ---------------------------------------------------------------- §6 safetensors write errors
FILE_SIZE_LIMITED = """import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
from isodeploy.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_failed_safetensors_write_is_one_line_and_leaves_nothing(tmp_path):
    """safetensors raises SafetensorError (not OSError) when the disk is full: a real write error,
    made here with a 1 MiB file-size limit in a child process (the weights are ~5 MB)."""
    import subprocess

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMITED, "prune", *TINY, "-o", out],
                          capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"), timeout=300)
    assert "Traceback" not in proc.stderr and proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: cannot write {out / 'model.safetensors'}: File too large" in proc.stderr
    assert not out.exists() or not any(p.name.endswith(".safetensors") or ".isodeploy-tmp-" in p.name for p in out.iterdir())


# ---------------------------------------------------------------- §6 compare --uniform-twin of any source
def test_uniform_twin_of_a_torchvision_folder_and_an_untrusted_factory_folder(tmp_path, capsys):
    tv = tmp_path / "tv"
    assert run(capsys, "prune", "torchvision:resnet18", "--weights", "random", "--img-size", "32", "--ratio", "0.3", "-o", tv).code == 0
    result = run(capsys, "compare", tv, "--uniform-twin", "--runtime", "torch", "--iters", "2", "--warmup", "1", "--no-memory")
    assert result.code == 0, result.text[-2000:]
    assert "uniform-twin" in result.out
    fac = tmp_path / "fac"
    assert run(capsys, "prune", "round3_models:tiny_cnn", "--weights", "random", "--img-size", "16", "--ratio", "0.5", "-o", fac).code == 0
    line = assert_refused(run(capsys, "compare", fac, "--uniform-twin", "--runtime", "torch", "--iters", "2"), 2)
    assert "--trust-factory round3_models:tiny_cnn" in line


# ---------------------------------------------------------------- §6 the Python API names the argument
API_PARAMS = ["ratios", "target_macs", "preset", "result", "folder", "folder ", "path", "rules", "strict", "macs", "artifacts", "name"]


def _api_calls(tmp_path):
    import torch
    from round3_models import tiny_cnn

    import isodeploy

    model, x = tiny_cnn().eval(), torch.randn(2, 3, 16, 16)
    (tmp_path / "afile").write_text("x")
    return {
        "ratios": lambda: isodeploy.prune(model, x, ratios="0.3"),
        "target_macs": lambda: isodeploy.prune(model, x, target_macs="4.2G"),
        "preset": lambda: isodeploy.prune(model, x, preset=5),
        "result": lambda: isodeploy.save("x", tmp_path / "out"),
        "folder": lambda: isodeploy.load(None),
        "folder ": lambda: isodeploy.load(tmp_path / "afile"),
        "path": lambda: isodeploy.export_onnx(model, 5, example_inputs=x),
        "rules": lambda: isodeploy.analyze(model, x, rules=[1]),
        "strict": lambda: isodeploy.analyze(model, x, strict="yes"),
        "macs": lambda: isodeploy.register_op("relu", macs="not a function"),
        "artifacts": lambda: isodeploy.bench("model.onnx"),
        "name": lambda: isodeploy.create_model(5),
    }


@pytest.mark.parametrize("param", API_PARAMS)
def test_api_wrong_types_are_one_parameter_error(tmp_path, param):
    from isodeploy.core.errors import ParameterError

    with pytest.raises(ParameterError) as info:
        _api_calls(tmp_path)[param]()
    assert str(info.value).startswith(f"{param.strip()}= must be") and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_mac_formula_returning_text_is_one_line_naming_the_op():
    import torch
    from torch import nn

    import isodeploy
    from isodeploy.graph.ops import TABLE

    spec = TABLE.lookup(torch.ops.aten.hardtanh)
    old = spec.macs if spec is not None else None
    isodeploy.register_op(torch.ops.aten.hardtanh, macs=lambda node, shape: "lots", replace=True)
    try:
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Hardtanh(), nn.Conv2d(8, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                              nn.Linear(8, 4)).eval()
        with pytest.raises(isodeploy.IsodeployError, match="MAC formula registered for op 'hardtanh' returned 'lots'"):
            isodeploy.prune(model, torch.randn(2, 3, 16, 16), ratio=0.5)
    finally:
        TABLE.lookup(torch.ops.aten.hardtanh).macs = old


# ---------------------------------------------------------------- §7 MODEL: a name or a folder
def test_output_folder_named_like_the_model_and_stray_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name = TINY[0]
    args = ["prune-export", *TINY, "--no-bench", "--no-uniform-twin", "-o", name]
    result = run(capsys, *args)
    assert result.code == 0, result.text[-2000:]
    assert (tmp_path / name / "model.onnx").is_file()
    assert "unchanged, skipped" in run(capsys, *args).out  # a re-run still means the model, not the folder
    # the folder now holds isodeploy.json: the bare name is still the model (with a warning), ./NAME the folder
    result = run(capsys, "export", name, "--weights", "random", "--img-size", "32", "-o", "dense.onnx")
    assert result.code == 0 and f"pass ./{name} for the folder" in result.err, result.text[-2000:]
    assert run(capsys, "export", f"./{name}", "-o", "pruned.onnx").code == 0
    assert (tmp_path / "dense.onnx").stat().st_size > (tmp_path / "pruned.onnx").stat().st_size
    (tmp_path / "resnet18").mkdir()  # a stray folder (no isodeploy.json) never hides a model
    assert run(capsys, "groups", "resnet18", "--weights", "random", "--img-size", "32").code == 0
    assert_refused(run(capsys, "export", "./resnet18", "-o", "r.onnx"), 2, "holds no isodeploy.json")
    assert_refused(run(capsys, "export", "./nothere", "-o", "r.onnx"), 2, "'./nothere' does not exist")


def test_a_factory_named_on_the_command_line_is_trusted_for_that_command(tmp_path, capsys):
    out = tmp_path / "run"
    result = run(capsys, "prune-export", "round3_models:tiny_cnn", "--weights", "random", "--img-size", "16", "--ratio", "0.5",
                 "--no-bench", "-o", out)
    assert result.code == 0, result.text[-2000:]
    assert (out / "model.onnx").is_file()
    # the trust ends with the command: the folder alone does not choose code, and the CLI names the flag
    line = assert_refused(run(capsys, "export", out, "-o", tmp_path / "x.onnx"), 2, "--trust-factory round3_models:tiny_cnn")
    assert "trust=True" not in line


# ---------------------------------------------------------------- §7 messages name the flag the user typed
def test_messages_name_the_flag_the_user_typed(tmp_path, capsys):
    line = assert_refused(run(capsys, "prune", *TINY, "--embed-ratio", "1.5", "-o", tmp_path / "o"), 2)
    assert line.startswith("error: --embed-ratio must be") and "ratios[" not in line
    line = assert_refused(run(capsys, "groups", "resnet18", "--weights", "random", "--img-size", "32", "--check", "1.5"), 2)
    assert line.startswith("error: --check must be")
    assert not (tmp_path / "o").exists()


def test_img_size_on_a_pruned_folder_is_said_to_be_ignored(pruned, exported, tmp_path, capsys):
    needle = "--img-size ignored"
    for args in (["export", pruned, "--img-size", "64", "-o", tmp_path / "x.onnx"],
                 ["verify", exported, "--reference", pruned, "--img-size", "64", "--inputs", "2"],
                 ["bench", pruned, "--img-size", "64", "--runtime", "torch", "--iters", "2", "--warmup", "0", "--no-memory"],
                 ["groups", pruned, "--img-size", "64"]):
        result = run(capsys, *args)
        assert result.code == 0 and needle in result.err, (args[0], result.text[-1500:])


# ---------------------------------------------------------------- §7 torch 2.14's pickle refusal
def test_a_blocked_module_global_gets_the_safetensors_fix(tmp_path, capsys):
    """torch 2.14 refuses ``GLOBAL os.system`` with "unsupported GLOBAL … whose module os is blocked"."""
    import zipfile

    import torch

    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "ok.pth")
    evil = tmp_path / "evil.pth"
    payload = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."  # os.system("id") on unpickling
    with zipfile.ZipFile(tmp_path / "ok.pth") as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, payload if name.endswith("data.pkl") else src.read(name))
    line = assert_refused(run(capsys, "prune", "resnet18", "--weights", evil, "--ratio", "0.3", "-o", tmp_path / "o"), 2)
    assert "holds pickled objects" in line and "re-save it as safetensors" in line
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- §7 an unreadable class folder
def test_an_unreadable_calibration_class_folder_is_an_error(tmp_path):
    """rglob skips a folder it cannot read: a whole class would vanish from the calibration set.
    As root, permissions are enforced by dropping CAP_DAC_OVERRIDE for the child (setpriv)."""
    import subprocess

    from PIL import Image

    data = tmp_path / "data"
    for name in ("cat", "dog"):
        (data / name).mkdir(parents=True)
        Image.new("RGB", (40, 40), (10, 200, 30)).save(data / name / "0.png")
    (data / "dog").chmod(0)
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv: permissions cannot be enforced")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    try:
        proc = subprocess.run([*prefix, sys.executable, "-m", "isodeploy", "prune", *TINY, "--importance", "taylor",
                               "--calib-data", data, "-o", tmp_path / "o"], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, COLUMNS="200"))
    finally:
        (data / "dog").chmod(0o755)
    assert "Traceback" not in proc.stderr and proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot read the image folder '{data / 'dog'}'" in proc.stderr
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- §7 options never silently ignored, checks up front
def test_options_that_would_be_ignored_are_refused_or_warned(pruned, exported, tmp_path, capsys, monkeypatch):
    line = assert_refused(run(capsys, "triton-repo", exported, "--name", "m", "-o", tmp_path / "repo", "--server", sys.executable), 2)
    assert "--server is used only by --check" in line and not (tmp_path / "repo").exists()
    result = run(capsys, "export", pruned, "-o", tmp_path / "x.onnx", "--calib-data", tmp_path)
    assert result.code == 0 and "--calib-data ignored: only --precision fp16" in result.err
    result = run(capsys, "prune", "resnet18", "--weights", "random", "--img-size", "32", "--ratio", "0.2", "--head-ratio", "0.5",
                 "-o", tmp_path / "cnn")
    assert result.code == 0 and "--head-ratio ignored: the model has no 'heads' class" in result.err, result.text[-1500:]
    monkeypatch.setenv("ISODEPLOY_MEMORY_LIMIT_MB", "abc")
    assert_refused(run(capsys, "bench", exported, *BENCH, "--batch", "4"), 2, "ISODEPLOY_MEMORY_LIMIT_MB must be a number")


def test_report_paths_and_threads_are_checked_before_the_long_work(exported, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for args, needle in ((["bench", exported, *BENCH, "--json", blocker / "r.json"], "afile is a file, not a folder"),
                         (["bench", exported, *BENCH, "--md", blocker / "r.md"], "afile is a file, not a folder"),
                         (["compare", exported, *BENCH, "--plot", tmp_path / "x.gif"], "--plot"),
                         (["prune-export", *TINY, "-o", tmp_path / "run", "--json", blocker / "r.json"], "afile is a file"),
                         (["prune-export", *TINY, "-o", tmp_path / "run", "--threads", "0"], "--threads")):
        result = run(capsys, *args)
        assert_refused(result, 2, needle)
        assert "p50" not in result.out and "prune:" not in result.out  # nothing measured or pruned first
    assert not (tmp_path / "run").exists()
