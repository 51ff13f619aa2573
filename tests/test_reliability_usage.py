"""Usage errors: every malformed command line gets click's usage text, one ``error:`` line and exit 2.

typer raises its own vendored click exceptions (not ``click.ClickException``); none may surface as a
traceback.
"""

from __future__ import annotations

import pytest
from reliability_check import assert_refused, run

from isodeploy.cli import app

COMMANDS = sorted(c.name for c in app.registered_commands)


@pytest.mark.parametrize(
    "args,needle",
    [
        ([], "no command given"),
        (["nosuch"], "No such command 'nosuch'"),
        (["prune"], "Missing argument"),
        (["prune", "resnet18"], "Missing option '--output'"),
        (["prune", "resnet18", "-o"], "requires an argument"),
        (["prune", "resnet18", "-o", "d", "--bogus"], "No such option: --bogus"),
        (["prune", "resnet18", "-o", "d", "--ratio", "abc"], "Invalid value for '--ratio'"),
        (["prune-export", "resnet18", "-o", "d", "--bench-iters", "1.5"], "Invalid value for '--bench-iters'"),
        (["prune-export", "resnet18", "-o", "d", "--bench", "--no-such"], "No such option"),
        (["--no-such-global"], "No such option"),
        (["prune", "resnet18", "-o", "d", "--img-size", "0"], "Invalid value for '--img-size'"),
        (["prune", "resnet18", "-o", "d", "--img-size", "100000"], "Invalid value for '--img-size'"),
    ],
)
def test_usage_errors(capsys, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    result = run(capsys, *args)
    assert_refused(result, 2, needle)
    assert "Usage:" in result.err  # click's usage text comes with the error line
    if args:  # with no arguments at all, typer also prints the full help on stdout
        assert result.out == ""
    assert list(tmp_path.iterdir()) == []  # nothing written (no 'd' folder)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_an_unknown_option(capsys, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = run(capsys, command, "--definitely-not-an-option")
    assert_refused(result, 2)
    assert list(tmp_path.iterdir()) == []


def test_every_command_is_covered():
    assert {"prune", "prune-export", "finetune", "export", "verify", "bench", "triton-repo"} <= set(COMMANDS)


def test_help_and_version_still_exit_0(capsys):
    assert run(capsys, "--version").code == 0
    result = run(capsys, "prune", "--help")
    assert result.code == 0 and "Usage:" in result.out and "error:" not in result.text


def test_console_script_exits_2_without_traceback(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "isodeploy", "prune"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1


def test_an_input_error_under_torchrun_prints_once_and_every_rank_exits_2(tmp_path):
    import os
    import re
    import shutil
    import subprocess

    import torch

    torchrun = shutil.which("torchrun")
    if torchrun is None or not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("needs torchrun and gloo")
    (tmp_path / "data").mkdir()
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "isodeploy", "finetune", str(tmp_path / "no-student"),
           "--data", str(tmp_path / "data"), "-o", str(tmp_path / "out"), "--workers", "0", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore"))
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1, text[-3000:]
    assert "terminate called" not in text and "SIGABRT" not in text and "Signal 6" not in text, text[-3000:]
    # torchrun's own launcher reports the failed ranks (its traceback is its own, not a rank's)
    assert not re.search(r'File ".*/isodeploy/', text), text[-3000:]
    codes = re.findall(r"exitcode\s*:\s*(-?\d+)", text)
    assert codes and set(codes) == {"2"}, text[-3000:]
    assert not (tmp_path / "out").exists()
