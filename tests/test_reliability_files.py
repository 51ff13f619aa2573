"""What isodeploy writes and deletes: never through a link, never onto something that is not a regular
file, never a report over the run's own files; the clean-up removes only temporaries isodeploy made,
and only inside the folder it writes (docs/reliability.md, "Files isodeploy writes and deletes")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path

import pytest
from reliability_check import TINY, assert_refused, cli_process, dead_pid, run, snapshot

from isodeploy.cli import main
from isodeploy.core.output_folder import folder_lock, open_output_folder
from isodeploy.core.ownership import LOCK_FILE
from isodeploy.core.safe_write import write_json_atomic
from isodeploy.core.errors import IsodeployError

PIPE = ["prune-export", *TINY, "--no-bench"]
EXPORT = ["export", "resnet18", "--weights", "random", "--img-size", "32"]
PRECIOUS = "the user's file, somewhere else on disk"


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    """One prune-export output of a tiny ViT (copied per test)."""
    out = tmp_path_factory.mktemp("files") / "run"
    assert main([*PIPE, "-o", str(out)]) == 0
    return out


@pytest.fixture
def run_dir(pipeline_dir, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(pipeline_dir, out, symlinks=True)
    return out


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside every -o: nothing in it may change."""
    folder = tmp_path / "outside"
    (folder / "best").mkdir(parents=True)
    (folder / "victim.txt").write_text(PRECIOUS)
    for name in ("model.safetensors", "checkpoint.pt", "best/README", "model/1/model.onnx"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(PRECIOUS)
    return folder


def _is_fifo(path: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


# -- 1. never write through a link or onto something that is not a regular file -------------------
def test_a_linked_or_hard_linked_lock_never_truncates_its_target(run_dir, outside, capsys):
    victim = outside / "victim.txt"
    lock = run_dir / LOCK_FILE
    lock.symlink_to(victim)
    assert_refused(run(capsys, "prune", *TINY, "-o", run_dir), 2, "symbolic link")
    assert_refused(run(capsys, *PIPE, "-o", run_dir), 2, "symbolic link")
    with pytest.raises(IsodeployError, match="symbolic link"):
        with folder_lock(run_dir):
            pass
    lock.unlink()
    os.link(victim, lock)  # a hard link: the same file under two names
    with pytest.raises(IsodeployError, match="hard links"):
        with open_output_folder(run_dir):
            pass
    assert victim.read_text() == PRECIOUS
    lock.unlink()
    os.mkfifo(lock)
    with pytest.raises(IsodeployError, match="FIFO"):  # refused at once, never a blocked open
        with folder_lock(run_dir):
            pass
    assert _is_fifo(lock)


def test_finetune_lock_in_a_run_folder_is_never_followed(run_dir, outside, tmp_path, capsys):
    out = tmp_path / "ft"
    out.mkdir()
    (out / LOCK_FILE).symlink_to(outside / "victim.txt")
    assert_refused(run(capsys, "finetune", run_dir, "--data", tmp_path, "-o", out, "--resume"), 2, "symbolic link")
    assert (outside / "victim.txt").read_text() == PRECIOUS


@pytest.mark.parametrize("entry", ["triton", "uniform", "finetune", "model.onnx"])
def test_a_linked_owned_entry_is_refused_never_followed(run_dir, outside, capsys, entry):
    target = run_dir / entry
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    target.symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    line = assert_refused(run(capsys, *PIPE, "-o", run_dir), 2, "symbolic link")
    assert str(target) in line
    assert snapshot(outside) == before and target.is_symlink()


def test_a_link_deep_inside_an_owned_folder_is_refused(run_dir, outside, capsys):
    model_dir = next(p for p in (run_dir / "triton").iterdir() if p.is_dir())
    shutil.rmtree(model_dir / "1")
    (model_dir / "1").symlink_to(outside / "model" / "1", target_is_directory=True)
    before = snapshot(outside)
    assert_refused(run(capsys, *PIPE, "-o", run_dir, "--force"), 2, "symbolic link")
    assert snapshot(outside) == before


def test_finetune_refuses_linked_run_entries(run_dir, outside, tmp_path, capsys):
    out = tmp_path / "ft"
    out.mkdir()
    (out / "best").symlink_to(outside / "best", target_is_directory=True)
    (out / "checkpoint.pt").symlink_to(outside / "checkpoint.pt")
    before = snapshot(outside)
    assert_refused(run(capsys, "finetune", run_dir, "--data", tmp_path, "-o", out, "--force"), 2, "symbolic link")
    assert snapshot(outside) == before


def test_reports_and_exports_never_replace_a_fifo_or_a_link(tmp_path, outside, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_refused(run(capsys, "presets", "--json", fifo), 2, "FIFO")
    assert_refused(run(capsys, *EXPORT, "-o", fifo), 2, "FIFO")
    link = tmp_path / "link.json"
    link.symlink_to(outside / "victim.txt")
    assert_refused(run(capsys, "presets", "--json", link), 2, "symbolic link")
    with pytest.raises(IsodeployError, match="FIFO"):
        write_json_atomic(fifo, {"a": 1})
    assert _is_fifo(fifo) and link.is_symlink() and (outside / "victim.txt").read_text() == PRECIOUS


def test_a_report_path_that_is_an_input_or_artifact_is_refused(run_dir, tmp_path, capsys):
    before = snapshot(run_dir)
    line = assert_refused(run(capsys, *PIPE, "-o", run_dir, "--json", run_dir / "isodeploy.json"), 2, "--json")
    assert "never replaces it" in line
    assert_refused(run(capsys, *PIPE, "-o", run_dir, "--json", run_dir / "triton" / "r.json"), 2, "--json")
    onnx = run_dir / "model.onnx"
    assert_refused(run(capsys, "verify", onnx, "--json", onnx), 2, "an input of this run")
    assert_refused(run(capsys, "bench", onnx, "--json", tmp_path / "r.json", "--md", tmp_path / "r.json"), 2, "also given to")
    assert_refused(run(capsys, "prune", run_dir, "-o", tmp_path / "p", "--json", run_dir / "model.safetensors"), 2, "--json")
    assert snapshot(run_dir) == before
    out = tmp_path / "m.onnx"
    assert_refused(run(capsys, *EXPORT, "-o", out, "--json", out), 2, "an output of this run")
    assert not out.exists()


def test_compare_never_writes_its_md_or_plot_over_an_input(run_dir, tmp_path, capsys):
    onnx = run_dir / "model.onnx"
    before = snapshot(run_dir)
    for flag in ("--md", "--plot"):
        line = assert_refused(run(capsys, "compare", onnx, "--runtime", "ort", flag, onnx), 2, "an input of this run")
        assert flag in line
    assert snapshot(run_dir) == before  # the ONNX is unchanged


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_json_in_a_read_only_folder_is_refused_before_the_long_work(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = run(capsys, "prune-export", *TINY, "-o", tmp_path / "run", "--json", ro / "r.json")
        assert_refused(result, 2, "not writable")
        assert "prune" not in result.out
        assert not (tmp_path / "run").exists()
    finally:
        ro.chmod(0o755)


# -- 2. clean up only what this run made, only inside -o ------------------------------------------
def test_the_clean_up_never_touches_siblings_of_the_output_folder(tmp_path, capsys):
    out = tmp_path / "out"
    thesis = tmp_path / ".out.old-2024"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("years of work")
    backup = tmp_path / f".out.old-{dead_pid()}"
    backup.mkdir()
    (backup / "model.safetensors").write_text("the user's own copy")
    staged = tmp_path / ".out.abcdefgh"
    staged.mkdir()
    (staged / "model.safetensors").write_text("the user's model")
    before = snapshot(tmp_path)
    assert run(capsys, "prune", *TINY, "-o", out).code == 0
    assert snapshot(tmp_path, skip=out) == before


def test_the_clean_up_removes_only_its_own_names_inside_owned_folders(run_dir, capsys):
    pid = dead_pid()
    user = {"triton/.notes.tmp-1": "mine", "triton/.plan.old-2024": "mine", ".model.onnx.mynotes": "mine",
            ".report.md.backup": "mine", ".isodeploy-tmp-notes": "mine"}
    for name, text in user.items():
        (run_dir / name).write_text(text)
    ours = [run_dir / "triton" / f".isodeploy-tmp-{pid}-0a0b0c0d-model", run_dir / f".isodeploy-tmp-{pid}-0a0b0c0d-model.onnx",
            run_dir / ".model.onnx.abcd_123", run_dir / ".report.md.k3j4ab12.tmp"]
    ours[0].mkdir()
    (ours[0] / "config.pbtxt").write_text("half")
    ours[1].write_text("half")
    ours[2].mkdir()
    (ours[2] / "model.onnx").write_text("half")  # an older isodeploy's staging folder: only ONNX files inside
    ours[3].write_text("half")
    result = run(capsys, *PIPE, "-o", run_dir)
    assert result.code == 0, result.text
    assert {n: (run_dir / n).read_text() for n in user} == user
    assert not any(os.path.lexists(p) for p in ours)


def test_an_older_style_folder_with_user_files_inside_is_kept(run_dir, capsys):
    look_alike = run_dir / ".model.onnx.abcd1234"
    look_alike.mkdir()
    (look_alike / "diary.txt").write_text("mine")
    assert run(capsys, *PIPE, "-o", run_dir).code == 0
    assert (look_alike / "diary.txt").read_text() == "mine"


def test_a_killed_export_leaves_nothing_that_the_next_export_keeps(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    proc = cli_process([*EXPORT, "-o", out])
    deadline = time.monotonic() + 240
    while not [p for p in tmp_path.iterdir() if p.name.startswith(".")]:  # the export's work folder
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert left, "the kill left nothing to clean"
    pid = dead_pid()
    legacy = [tmp_path / ".m.onnx.raw.abcd1234", tmp_path / ".m.onnx.k3j4ab_9"]  # an older isodeploy's
    for folder in legacy:
        folder.mkdir()
        (folder / ("raw.onnx" if "raw" in folder.name else "m.onnx")).write_bytes(b"x" * 1000)
    (tmp_path / f".isodeploy-tmp-{pid}-0a0b0c0d-m.onnx.raw").mkdir()
    live = tmp_path / f".isodeploy-tmp-{os.getpid()}-0a0b0c0d-m.onnx.raw"  # a running export's: kept
    live.mkdir()
    other = tmp_path / f".isodeploy-tmp-{pid}-0a0b0c0d-other.onnx.raw"  # another target's: not this export's business
    other.mkdir()
    (tmp_path / ".m.onnx.notes").write_text("mine")
    assert run(capsys, *EXPORT, "-o", out).code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted([live.name, other.name, ".m.onnx.notes"])


def test_a_failed_triton_check_removes_its_temp_folder(tmp_path, monkeypatch, capsys):
    from test_tensorrt_build import export_tiny

    system_tmp = tmp_path / "systmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    server = tmp_path / "tritonserver"
    server.write_text("#!/bin/sh\necho 'E1204 13:00:00 server.cc] fake failure: no GPU here'\nexit 1\n")
    server.chmod(0o755)
    src = export_tiny(tmp_path / "m.onnx")
    line = assert_refused(run(capsys, "triton-repo", src, "--name", "tiny", "-o", tmp_path / "repo", "--check",
                              "--server", server, "--json", tmp_path / "r.json"), 1, "fake failure")
    assert str(system_tmp) not in line  # no path to a log that is gone
    assert list(system_tmp.iterdir()) == []
    assert json.loads((tmp_path / "r.json").read_text())["model_dir"].endswith("tiny")
