"""Concurrency: one lock per output folder. A second run into a busy folder waits
(``ISODEPLOY_LOCK_WAIT`` seconds) or fails with one line naming the holder's PID; no run reports
another's numbers."""

from __future__ import annotations

import json
import os
import signal

from reliability_check import TINY, assert_refused, cli_process, error_lines, run, temporaries, wait_for_line

from isodeploy.core.output_folder import open_output_folder
from isodeploy.core.ownership import LOCK_FILE

ARGS = ["prune-export", *TINY, "--no-bench"]


def test_a_held_folder_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ISODEPLOY_LOCK_WAIT", "0")
    out = tmp_path / "out"
    with open_output_folder(out):
        for command in (["prune", *TINY], ARGS):
            assert_refused(run(capsys, *command, "-o", out), 2, f"in use by another isodeploy run (pid {os.getpid()})")
    assert not (out / LOCK_FILE).exists()  # released
    assert run(capsys, "prune", *TINY, "-o", out).code == 0


def test_two_processes_into_one_folder(tmp_path):
    out = tmp_path / "out"
    first = cli_process([*ARGS, "-o", out])
    try:
        wait_for_line(first, lambda line: line.startswith("prune …"))  # the first holds the lock now
        second = cli_process([*ARGS, "-o", out], env={"ISODEPLOY_LOCK_WAIT": "0"})
        text, _ = second.communicate(timeout=120)
        assert second.returncode == 2, text
        assert "Traceback" not in text and len(error_lines(text)) == 1
        assert f"in use by another isodeploy run (pid {first.pid})" in error_lines(text)[0]
        rest, _ = first.communicate(timeout=600)
        assert first.returncode == 0, rest[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert not temporaries(out)

    # a waiting second run: starts when the first is done, finds every stage fresh
    first = cli_process([*ARGS, "-o", out, "--force"])
    wait_for_line(first, lambda line: line.startswith("prune …"))
    second = cli_process([*ARGS, "-o", out], env={"ISODEPLOY_LOCK_WAIT": "600"})
    first_text, _ = first.communicate(timeout=600)
    second_text, _ = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, first_text[-2000:] + second_text[-2000:]
    assert "prune: done" in first_text and "prune: unchanged, skipped" in second_text
    report = json.loads((out / "report.json").read_text())
    assert report["numerics"]["onnxruntime FP32 vs PyTorch"]["passed"] is True


def test_finetune_into_a_busy_folder_is_one_line(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from isodeploy.core.output_folder import folder_lock

    monkeypatch.setenv("ISODEPLOY_LOCK_WAIT", "0")
    assert run(capsys, "prune", *TINY, "-o", tmp_path / "student").code == 0
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 40), color=(60 * i, 20, 200 - 40 * i)).save(data / f"{i}.png")
    out = tmp_path / "ft"
    with folder_lock(out):
        assert_refused(run(capsys, "finetune", tmp_path / "student", "--data", data, "-o", out, "--epochs", "1",
                           "--workers", "0", "-b", "2"), 2, "in use by another isodeploy run")
    assert not out.exists()  # the lock's folder, empty, went with the lock
