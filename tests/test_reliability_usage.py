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
