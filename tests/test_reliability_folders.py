"""Output folders: isodeploy replaces only what it wrote, refuses others' folders (``--force`` too),
the input folder and symlinked paths, cleans leftovers of killed runs, leaves no empty folder behind
and re-runs a stage whose output was replaced by hand."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from reliability_check import TINY, assert_refused, dead_pid, run, snapshot, temporaries

from isodeploy.cli import main
from isodeploy.core.output_folder import open_output_folder
from isodeploy.core.ownership import OWNER_FILE, read_owned

PIPE = ["prune-export", *TINY, "--no-bench"]


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    """One prune-export output of a tiny ViT (copied per test)."""
    out = tmp_path_factory.mktemp("pipe") / "run"
    assert main([*PIPE, "-o", str(out)]) == 0
    return out


@pytest.fixture
def run_dir(pipeline_dir, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(pipeline_dir, out, symlinks=True)
    return out


def _stages(folder: Path) -> dict:
    return json.loads((folder / "isodeploy.json").read_text())["pipeline"]["stages"]


def test_force_never_replaces_a_folder_of_other_files(tmp_path, capsys):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8 not really")
    (other / "model.safetensors").write_bytes(b"the user's own")
    before = snapshot(tmp_path)
    for command in (["prune", *TINY], PIPE):
        line = assert_refused(run(capsys, *command, "-o", other, "--force"), 2, "holds files isodeploy did not write")
        assert "--force" not in line and "choose a new or empty folder" in line
    assert snapshot(tmp_path) == before


def test_prune_into_a_run_of_the_same_model_keeps_everything_else(run_dir, tmp_path, capsys):
    (run_dir / "notes.txt").write_text("my notes")
    with open_output_folder(run_dir) as out:  # as the finetune stage records its folder
        out.claim("finetune")
        (run_dir / "finetune").mkdir()
        (run_dir / "finetune" / "keep.txt").write_text("x")
    keep = {k: v for k, v in snapshot(run_dir).items() if not k.endswith(("model.safetensors", "isodeploy.json", OWNER_FILE))}
    outside = snapshot(tmp_path, skip=run_dir)
    result = run(capsys, "prune", *TINY[:-1], "0.5", "-o", run_dir)
    assert result.code == 0, result.text
    after = snapshot(run_dir)
    assert all(after.get(k) == v for k, v in keep.items())  # ONNX, reports, triton/, finetune/, notes: untouched
    assert snapshot(tmp_path, skip=run_dir) == outside
    assert not temporaries(run_dir)
    # the pipeline notices the replaced weights (output hash of 'prune') and re-prunes; the later
    # stages re-run only if the weights came out different from the ones they were made from
    result = run(capsys, *PIPE, "-o", run_dir)
    assert result.code == 0, result.text
    assert "prune: done" in result.out and "prune: unchanged" not in result.out
    stages = _stages(run_dir)
    assert stages["verify"]["status"] == "done" and stages["verify"]["detail"]["passed"] is True
    assert (run_dir / "notes.txt").read_text() == "my notes"


def test_a_hand_replaced_output_reruns_its_stage(run_dir, capsys):
    import onnx

    model = onnx.load(str(run_dir / "model.onnx"))
    model.producer_name = "someone else"
    onnx.save(model, str(run_dir / "model.onnx"))
    result = run(capsys, *PIPE, "-o", run_dir)
    assert result.code == 0, result.text
    assert "prune: unchanged, skipped" in result.out
    assert "export: done" in result.out and "verify: done" in result.out
    assert onnx.load(str(run_dir / "model.onnx")).producer_name != "someone else"


def test_output_equal_to_input_is_refused(run_dir, capsys):
    before = snapshot(run_dir)
    for command in (["prune", str(run_dir), "--ratio", "0.2"], ["prune-export", str(run_dir), "--ratio", "0.2", "--no-bench"]):
        assert_refused(run(capsys, *command, "-o", run_dir), 2, "is the input folder")
        assert_refused(run(capsys, *command, "-o", f"{run_dir}/../{run_dir.name}"), 2, "is the input folder")
    assert snapshot(run_dir) == before


def test_symlinked_output_is_refused(tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    before = snapshot(tmp_path)
    for command in (["prune", *TINY], PIPE):
        assert_refused(run(capsys, *command, "-o", link), 2, "is a symbolic link")
    assert snapshot(tmp_path) == before and link.is_symlink()


def test_unwritable_places_are_one_line(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    assert_refused(run(capsys, "prune", *TINY, "-o", a_file / "sub"), 2, "is a file")
    assert_refused(run(capsys, "prune", *TINY, "-o", tmp_path / "o", "--json", a_file / "r.json"), 2, "cannot write")
    assert_refused(run(capsys, "prune", *TINY, "-o", tmp_path / "o2", "--json", tmp_path), 2, "is a folder")
    assert a_file.read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_is_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_refused(run(capsys, "prune", *TINY, "-o", ro / "out"), 2, "not writable")
    finally:
        ro.chmod(0o755)


def test_dot_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = run(capsys, "prune", *TINY, "-o", ".")
    assert result.code == 0, result.text
    assert (tmp_path / "model.safetensors").is_file() and read_owned(tmp_path) == {"model.safetensors", "isodeploy.json"}
    (tmp_path / "mine.txt").write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a").write_text("a")
    monkeypatch.chdir(other)
    assert_refused(run(capsys, "prune", *TINY, "-o", "."), 2, "holds files isodeploy did not write")


def test_no_empty_folder_left_by_a_failed_input(tmp_path, capsys):
    for command in (["prune-export", *TINY[:-2], "--preset", "nope", "--no-bench"], ["prune", *TINY[:-2], "--preset", "nope"],
                    ["prune-export", "no_such_model_xyz", "--ratio", "0.3", "--no-bench"]):
        assert_refused(run(capsys, *command, "-o", tmp_path / "new" / "out"), 2)
        assert not (tmp_path / "new").exists()


def test_leftovers_of_killed_runs_are_cleaned(run_dir, tmp_path, capsys):
    pid = dead_pid()
    (run_dir / ".dense.onnx.raw.ab12cd34").mkdir()  # an older isodeploy's work folder: tempfile's 8 characters
    (run_dir / ".dense.onnx.raw.ab12cd34" / "raw.onnx").write_bytes(b"x" * 1000)
    (run_dir / f".isodeploy-tmp-{pid}-0a0b0c0d-model.onnx").write_bytes(b"half")
    (run_dir / ".model.safetensors.k3j4ab12.tmp").write_bytes(b"half")
    (run_dir / ".my-dotfile").write_text("the user's")
    backup = run_dir.parent / f".{run_dir.name}.old-{pid}"
    backup.mkdir()
    (backup / "model.safetensors").write_bytes(b"old")
    system = Path(tempfile.gettempdir()) / f"isodeploy-bench-{pid}-zz"
    system.mkdir(exist_ok=True)
    (system / "dense.onnx").write_bytes(b"x")
    live = Path(tempfile.gettempdir()) / f"isodeploy-bench-{os.getpid()}-zz"  # a live run's: kept
    live.mkdir(exist_ok=True)
    try:
        result = run(capsys, *PIPE, "-o", run_dir)
        assert result.code == 0, result.text
        assert not temporaries(run_dir) and not system.exists()
        assert (backup / "model.safetensors").read_bytes() == b"old"  # next to -o: never isodeploy's to delete
        assert (run_dir / ".my-dotfile").read_text() == "the user's" and live.exists()
    finally:
        shutil.rmtree(system, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)


def test_a_first_prune_killed_before_any_file_does_not_block(tmp_path, capsys):
    """What a kill in the first prune leaves (marker + temporaries, or an older version's temporaries)."""
    pid = dead_pid()
    new_style = tmp_path / "a"
    new_style.mkdir()
    (new_style / OWNER_FILE).write_text(json.dumps({"files": []}))
    (new_style / f".isodeploy-tmp-{pid}-00000000-model.safetensors").write_bytes(b"half")
    old_style = tmp_path / "b"
    old_style.mkdir()
    (old_style / ".model.safetensors.abcd1234.tmp").write_bytes(b"half")
    for folder in (new_style, old_style):
        for command in (["prune", *TINY], PIPE):
            result = run(capsys, *command, "-o", folder)
            assert result.code == 0, result.text
            assert not temporaries(folder)


def test_a_user_file_named_like_an_artifact_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "prune", *TINY, "-o", out).code == 0
    (out / "model.onnx").write_bytes(b"the user's onnx")
    assert_refused(run(capsys, *PIPE, "-o", out), 2, "was not written by isodeploy")
    assert (out / "model.onnx").read_bytes() == b"the user's onnx"


def test_another_models_run_needs_force_and_keeps_user_files(run_dir, capsys):
    (run_dir / "notes.txt").write_text("mine")
    assert_refused(run(capsys, "prune", "resnet18", "--weights", "random", "--img-size", "32", "--ratio", "0.3", "-o", run_dir),
                   2, "holds a pruned 'deit_tiny_patch16_224'")
    result = run(capsys, "prune", "resnet18", "--weights", "random", "--img-size", "32", "--ratio", "0.3", "-o", run_dir, "--force")
    assert result.code == 0, result.text
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert json.loads((run_dir / "isodeploy.json").read_text())["source"]["timm"] == "resnet18"


def test_a_run_from_before_the_marker_is_adopted(run_dir, capsys):
    (run_dir / OWNER_FILE).unlink()
    (run_dir / "notes.txt").write_text("mine")
    result = run(capsys, *PIPE, "-o", run_dir, "--force")
    assert result.code == 0, result.text
    owned = read_owned(run_dir)
    assert {"model.safetensors", "isodeploy.json", "model.onnx", "verify.json", "triton", "report.md"} <= owned
    assert "notes.txt" not in owned and (run_dir / "notes.txt").read_text() == "mine"
