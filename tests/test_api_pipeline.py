"""The api behind `prune`, `prune-export`, `finetune` and `triton-repo`: a Python call does what the
command does, with the same defaults and the same one-line errors (issue #23)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from isodeploy import api
from isodeploy.cli import main

try:
    from test_tensorrt_build import export_tiny
except ImportError:  # tests/ collected as a package
    from tests.test_tensorrt_build import export_tiny

CNN = dict(weights="random", img_size=32)
CNN_ARGS = ["--weights", "random", "--img-size", "32"]


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error(err: str) -> str:
    """The CLI's single ``error:`` line, without the prefix."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0][len("error: "):]


def _cli_line(exc: api.IsodeployError) -> str:
    return exc.for_cli() if hasattr(exc, "for_cli") else str(exc)


@pytest.mark.parametrize("function,command", [
    (api.prune_to_folder, "isodeploy.commands.prune:prune"),
    (api.prune_export, "isodeploy.commands.prune_export:prune_export"),
    (api.finetune, "isodeploy.commands.finetune:finetune"),
    (api.triton_repo, "isodeploy.commands.triton_repo:triton_repo_cmd"),
])
def test_api_defaults_are_the_commands_defaults(function, command):
    """Every option the command has with a default, the api function has with the same default."""
    import importlib

    module, name = command.split(":")
    cli_params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    api_params = inspect.signature(function).parameters
    renamed = {"preferred": "preferred_batch"}
    compared = 0
    for cli_name, param in cli_params.items():
        default = getattr(param.default, "default", param.default)
        if default is ... or default is inspect.Parameter.empty:
            continue  # a required argument
        api_name = renamed.get(cli_name, cli_name)
        assert api_name in api_params, f"{function.__name__} lacks {api_name}="
        assert api_params[api_name].default == default, f"{function.__name__}({api_name}=) default differs from the CLI"
        compared += 1
    assert compared >= 5


def test_prune_to_folder_writes_what_the_command_writes(tmp_path, capsys):
    run = api.prune_to_folder("resnet18", tmp_path / "api", ratio=0.3, head_ratio=0.5, json_path=tmp_path / "api.json", **CNN)
    code, _, err = _cli(capsys, "prune", "resnet18", *CNN_ARGS, "--ratio", "0.3", "--head-ratio", "0.5", "-o", tmp_path / "cli",
                        "--json", tmp_path / "cli.json")
    assert code == 0, err
    by_api = json.loads((tmp_path / "api" / "isodeploy.json").read_text())
    by_cli = json.loads((tmp_path / "cli" / "isodeploy.json").read_text())
    assert by_api["macs"] == by_cli["macs"] and by_api["config"] == by_cli["config"]
    assert by_api["macs"]["after"] < by_api["macs"]["before"]
    report = json.loads((tmp_path / "api.json").read_text())
    assert report == run.report and report["output"] == str(tmp_path / "api") and "groups" not in report
    # --head-ratio on a CNN changed nothing: the api returns the line the command warns with
    assert run.notes and run.notes[0].startswith("--head-ratio ignored: the model has no 'heads' class")
    assert f"warning: {run.notes[0]}" in err
    assert isinstance(api.load(tmp_path / "api"), __import__("torch").nn.Module)


@pytest.mark.parametrize("kwargs,args,expected", [
    (dict(ratio=1.5), ["--ratio", "1.5"], "--ratio must be a fraction in [0, 1)"),
    (dict(embed_ratio=1.5), ["--embed-ratio", "1.5"], "--embed-ratio must be a fraction in [0, 1)"),
    (dict(target_macs="lots"), ["--target-macs", "lots"], "--target-macs takes a number"),
    (dict(ratio=0.3, norm="l3"), ["--ratio", "0.3", "--norm", "l3"], "--norm must be l1 or l2"),
    (dict(), [], "no ratios for 'resnet18'"),  # resnet18 has no recipe of its own
])
def test_prune_to_folder_errors_are_the_commands(tmp_path, capsys, kwargs, args, expected):
    with pytest.raises(api.IsodeployError) as info:
        api.prune_to_folder("resnet18", tmp_path / "o", **kwargs, **CNN)
    code, _, err = _cli(capsys, "prune", "resnet18", *CNN_ARGS, *args, "-o", tmp_path / "o")
    assert code == info.value.exit_code == api.ExitCode.BAD_INPUT
    assert _one_error(err) == _cli_line(info.value) and _one_error(err).startswith(expected)
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_a_per_kind_ratio_error_names_the_api_parameter(tmp_path):
    with pytest.raises(api.ParameterError) as info:
        api.prune_to_folder("resnet18", tmp_path / "o", embed_ratio=2.0, **CNN)
    assert str(info.value).startswith("embed_ratio= must be a fraction") and info.value.for_cli().startswith("--embed-ratio ")


def test_prune_to_folder_checks_the_output_folder_first(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    with pytest.raises(api.IsodeployError, match="is a file"):
        api.prune_to_folder("resnet18", a_file, ratio=0.3, **CNN)
    assert a_file.read_text() == "keep me"


def test_advisory_lines_go_to_warn_or_become_user_warnings(tmp_path):
    said = []
    with pytest.raises(api.IsodeployError):  # the warning comes before the (bad) ratio is refused
        api.prune_to_folder("resnet18", tmp_path / "o", ratio=1.5, calib_data="synthetic", warn=said.append, **CNN)
    assert said == ["--calib-data is ignored: only --importance taylor uses calibration images (this run: magnitude)"]
    with pytest.warns(UserWarning, match="--calib-data is ignored"), pytest.raises(api.IsodeployError):
        api.prune_to_folder("resnet18", tmp_path / "o", ratio=1.5, calib_data="synthetic", **CNN)


def test_model_argument_warnings_for_a_folder(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "isodeploy.json").write_text("{}")
    lines = api.model_argument_warnings(str(folder), "random", 64)
    assert lines == [f"--weights and --img-size ignored: MODEL '{folder}' is an isodeploy folder, which records its own "
                     "weights and input size"]
    assert api.model_argument_warnings(str(folder)) == []
    assert api.model_argument_warnings("resnet18", "random", 64) == []


@pytest.mark.parametrize("kwargs,args", [
    (dict(target="tpu", ratio=0.3), ["--target", "tpu", "--ratio", "0.3"]),
    (dict(preset="nope"), ["--preset", "nope"]),
    (dict(ratio=0.3, epochs=0), ["--ratio", "0.3", "--epochs", "0"]),
])
def test_prune_export_errors_are_the_commands(tmp_path, capsys, kwargs, args):
    with pytest.raises(api.IsodeployError) as info:
        api.prune_export("resnet18", tmp_path / "o", **kwargs, **CNN)
    code, _, err = _cli(capsys, "prune-export", "resnet18", *CNN_ARGS, *args, "-o", tmp_path / "o")
    assert code == info.value.exit_code == 2
    assert _one_error(err) == _cli_line(info.value)


def test_prune_export_refuses_a_report_inside_its_own_folder(tmp_path, capsys):
    out = tmp_path / "o"
    with pytest.raises(api.IsodeployError) as info:
        api.prune_export("resnet18", out, ratio=0.3, json_path=out / "report.json", **CNN)
    code, _, err = _cli(capsys, "prune-export", "resnet18", *CNN_ARGS, "--ratio", "0.3", "-o", out, "--json", out / "report.json")
    assert code == 2 and _one_error(err) == _cli_line(info.value) and "--json" in str(info.value)


def test_finetune_errors_are_the_commands(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(api.IsodeployError) as info:
        api.finetune(tmp_path / "student", str(tmp_path / "data"), out, json_path=out / "checkpoint.pt")
    code, _, err = _cli(capsys, "finetune", tmp_path / "student", "--data", tmp_path / "data", "-o", out,
                        "--json", out / "checkpoint.pt")
    assert code == info.value.exit_code == 2 and _one_error(err) == _cli_line(info.value)
    with pytest.raises(api.IsodeployError) as info:
        api.finetune(tmp_path / "student", str(tmp_path / "data"), out, epochs=0)
    code, _, err = _cli(capsys, "finetune", tmp_path / "student", "--data", tmp_path / "data", "-o", out, "--epochs", "0")
    assert code == 2 and _one_error(err) == _cli_line(info.value) == "--epochs must be ≥ 1; got 0"
    assert not out.exists()  # the lock's folder is removed again


def test_triton_repo_writes_what_the_command_writes(tmp_path, capsys):
    model = export_tiny(tmp_path / "tiny.onnx")
    seen = []
    report = api.triton_repo(model, "tiny", tmp_path / "api", preferred_batch=[4, 8], json_path=tmp_path / "api.json",
                             on_written=seen.append)
    code, out, err = _cli(capsys, "triton-repo", model, "--name", "tiny", "-o", tmp_path / "cli", "--preferred-batch", "4,8")
    assert code == 0, err
    assert seen == [report] and report.check is None and report.platform == "onnxruntime_onnx"
    assert (tmp_path / "api" / "tiny" / "config.pbtxt").read_text() == (tmp_path / "cli" / "tiny" / "config.pbtxt").read_text()
    assert json.loads((tmp_path / "api.json").read_text())["model_dir"] == report.model_dir
    assert " written: onnxruntime_onnx, max_batch_size 64" in " ".join(out.split())  # the command prints the same report


@pytest.mark.parametrize("kwargs,args", [
    (dict(server="/bin/true"), ["--server", "/bin/true"]),
    (dict(backend_dir="/tmp"), ["--backend-dir", "/tmp"]),
    (dict(preferred_batch="8,x"), ["--preferred-batch", "8,x"]),
    (dict(check=True, server="/no/such/tritonserver"), ["--check", "--server", "/no/such/tritonserver"]),
])
def test_triton_repo_errors_are_the_commands(tmp_path, capsys, kwargs, args):
    model = export_tiny(tmp_path / "tiny.onnx")
    with pytest.raises(api.IsodeployError) as info:
        api.triton_repo(model, "tiny", tmp_path / "repo", **kwargs)
    code, _, err = _cli(capsys, "triton-repo", model, "--name", "tiny", "-o", tmp_path / "repo", *args)
    assert code == info.value.exit_code == 2 and _one_error(err) == _cli_line(info.value)
    assert not (tmp_path / "repo" / "tiny").exists()  # refused before writing


def test_public_names_are_importable():
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert Path(inspect.getsourcefile(api.prune_to_folder)).name == "pruning.py"
