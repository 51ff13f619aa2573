"""Kills and resume: ``kill -9`` at every stage of ``prune-export`` (the first prune included), then a
re-run completes and verifies, leaving no temporaries in the folder or the system temp dir.

The kill waits for the stage's start line on the run's output (never a fixed sleep).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from reliability_check import TINY, cli_process, snapshot, temporaries, wait_for_line

ARGS = ["prune-export", *TINY, "--bench-iters", "3", "--bench-warmup", "1", "--bench-batch", "1", "--no-uniform-twin"]
# Lines printed as each stage (or a step inside the first prune) starts.
KILL_AT = ["prune …", "slicing parameters", "export …", "verify …", "export-dense …", "bench …", "triton …"]


def _stages(folder: Path) -> dict:
    return json.loads((folder / "isodeploy.json").read_text())["pipeline"]["stages"]


@pytest.mark.parametrize("line", KILL_AT)
def test_kill_at_every_stage_then_resume(tmp_path, line):
    out = tmp_path / "run"
    outside = snapshot(tmp_path)
    proc = cli_process([*ARGS, "-o", out])
    try:
        wait_for_line(proc, lambda text: text.strip().startswith(line))
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    rerun = subprocess.run([sys.executable, "-m", "isodeploy", *ARGS, "-o", str(out)], capture_output=True, text=True,
                           timeout=600, env=dict(os.environ, COLUMNS="200"))
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Traceback" not in rerun.stderr
    stages = _stages(out)
    assert {"prune", "export", "verify", "export-dense", "bench", "triton"} <= set(stages)
    assert all(s["status"] == "done" for s in stages.values())
    assert stages["verify"]["detail"]["passed"] is True
    assert (out / "report.md").is_file() and (out / "bench.json").is_file()
    assert not temporaries(out)
    assert not list(Path(tempfile.gettempdir()).glob(f"isodeploy-bench-{proc.pid}-*"))
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(str(out))} == outside
    if line != KILL_AT[0]:
        return
    # and the resumed folder is complete: a third run has nothing to do
    third = subprocess.run([sys.executable, "-m", "isodeploy", *ARGS, "-o", str(out)], capture_output=True, text=True,
                           timeout=600, env=dict(os.environ, COLUMNS="200"))
    assert third.returncode == 0 and third.stdout.count("unchanged, skipped") == 6, third.stdout[-2000:]
