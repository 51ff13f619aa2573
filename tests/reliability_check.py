"""Shared assertions of the reliability tests (tests/test_reliability_*.py): every refusal is one
``error:`` line with the right exit code, no traceback, no half-written file, nothing touched outside."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from isodeploy.cli import main

# A tiny ViT: each prune-export of it takes seconds on two CPU cores.
TINY = ["deit_tiny_patch16_224", "--weights", "random", "--img-size", "32", "--ratio", "0.3"]
TEMP_MARKERS = (".isodeploy-tmp-", ".tmp", ".raw.", ".old-")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run(capsys, *args) -> Result:
    """The CLI in-process (fast): exit code, stdout, stderr."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return Result(int(code), captured.out, captured.err)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip().lower().startswith("error:")]


def assert_refused(result: Result, code: int = 2, needle: str | None = None) -> str:
    """Exit ``code``, exactly one ``error:`` line (containing ``needle``), no traceback."""
    assert "Traceback" not in result.text, result.text[-2000:]
    assert result.code == code, (result.code, result.text[-2000:])
    lines = error_lines(result.text)
    assert len(lines) == 1, result.text[-2000:]
    if needle is not None:
        assert needle in lines[0], lines[0]
    return lines[0]


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under ``root`` (except under ``skip``) → sha256 of its content (links: their target)."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        if path.is_symlink():
            out[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[str(path)] = "dir"
    return out


def temporaries(folder: Path) -> list[str]:
    """Leftover temporaries anywhere under ``folder`` (half-written files)."""
    if not Path(folder).exists():
        return []
    return [str(p) for p in Path(folder).rglob("*") if any(m in p.name for m in TEMP_MARKERS)]


def dead_pid() -> int:
    """The PID of a process that has exited (for fake leftovers of a killed run)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def cli_process(args: list[str], env: dict | None = None) -> subprocess.Popen:
    """``python -m isodeploy ARGS`` in its own session, line-buffered stdout+stderr."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "isodeploy", *[str(a) for a in args]], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=full_env, start_new_session=True)


def wait_for_line(proc: subprocess.Popen, predicate, timeout: float = 240) -> list[str]:
    """Read ``proc``'s output until a line satisfies ``predicate``; returns the lines read.
    Fails if the process ends first or the deadline passes (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if predicate(line):
            return seen
        assert time.monotonic() < deadline, "".join(seen[-20:])
    raise AssertionError("process ended before the awaited line:\n" + "".join(seen[-30:]))


# -- shared artifacts: import them into a test module (``from reliability_check import pruned``) ------------
@pytest.fixture(scope="module")
def pruned(tmp_path_factory) -> Path:
    """A pruned tiny ViT folder, made once per test module."""
    out = tmp_path_factory.mktemp("pruned") / "p"
    assert main(["prune", *TINY, "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def exported(pruned, tmp_path_factory) -> Path:
    """The ONNX export of :func:`pruned`, in a folder of its own."""
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", str(pruned), "-o", str(out)]) == 0
    return out


def tampered_copy(folder: Path, tmp_path: Path, edit) -> Path:
    """A copy of ``folder`` whose spec ``edit`` changed: it edits the parsed spec in place (returns None),
    returns a replacement object, or returns the file's new text/bytes verbatim."""
    copy = tmp_path / "tampered"
    shutil.copytree(folder, copy)
    spec = json.loads((copy / "isodeploy.json").read_text())
    result = edit(spec)
    text = result if isinstance(result, (str, bytes)) else json.dumps(spec if result is None else result)
    (copy / "isodeploy.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return copy

