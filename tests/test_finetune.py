"""`isodeploy finetune`: distillation recovers a pruned model's accuracy; resume is exact; bad input fails clearly.

The real task is scikit-learn's digits (8×8, upsampled to 32×32 PNGs): a small ViT is trained in the
test, pruned by half, and fine-tuned by distillation from its dense self.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import isodeploy
from isodeploy.cli import main
from isodeploy.pruning.pruner import prune_model, save_pruned
from isodeploy.pruning.plan import PruneConfig
from isodeploy.loading import load_model

SIZE = 32
VIT = "deit_tiny_patch16_224"
VIT_KWARGS = {"img_size": SIZE, "patch_size": 8, "depth": 2, "num_classes": 10, "embed_dim": 64, "num_heads": 2}


def write_digits(root: Path, indices: np.ndarray, flat: bool = False) -> Path:
    """Digits as 32×32 RGB PNGs: ``root/<label>/<i>.png`` (ImageFolder) or ``root/<i>.png`` (flat, unlabeled)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images / 16.0 * 255).astype(np.uint8)
    for i in indices:
        folder = root if flat else root / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).resize((SIZE, SIZE), Image.BILINEAR).convert("RGB").save(folder / f"{i:04d}.png")
    return root


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Train a small ViT on digits (CE, plain loop), prune it by half; returns the paths."""
    from isodeploy.pruning.calib import scan_images
    from isodeploy.train.data import eval_transform

    root = tmp_path_factory.mktemp("digits")
    order = np.random.default_rng(0).permutation(1797)
    write_digits(root / "train", order[:1300])
    write_digits(root / "train_flat", order[:1300], flat=True)
    write_digits(root / "val", order[1300:])
    dense = load_model(VIT, weights="random", **VIT_KWARGS)
    pcfg = dense.model.pretrained_cfg
    transform = eval_transform(dense.input_size, dense.mean, dense.std, pcfg["interpolation"], pcfg["crop_pct"])

    def tensors(folder: Path):
        images = scan_images(folder)
        return torch.stack([transform(Image.open(p).convert("RGB")) for p in images.paths]), torch.tensor(images.labels)

    x, y = tensors(root / "train")
    model = dense.model.train()
    epochs, batch = 16, 64
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=epochs * (len(x) // batch))
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for b in range(len(x) // batch):
            i = perm[b * batch:(b + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "dense.safetensors"))
    loaded = load_model(VIT, weights=str(root / "dense.safetensors"), **VIT_KWARGS)
    save_pruned(prune_model(loaded, PruneConfig(ratio=0.5, round_to=8)), root / "pruned")
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random tiny ViT with drop-path (so resume must replay dropout), pruned by half, and 80 labelled digits."""
    root = tmp_path_factory.mktemp("tiny")
    write_digits(root / "data", np.arange(80))
    write_digits(root / "val", np.arange(80, 120))
    write_digits(root / "flat", np.arange(40), flat=True)
    loaded = load_model(VIT, weights="random", drop_path_rate=0.1, **(VIT_KWARGS | {"embed_dim": 32}))
    save_pruned(prune_model(loaded, PruneConfig(ratio=0.5, round_to=8)), root / "pruned")
    other = load_model(VIT, weights="random", **(VIT_KWARGS | {"embed_dim": 32}))
    save_pruned(prune_model(other, PruneConfig(ratio=0.25, round_to=8)), root / "other")
    return root


TINY_ARGS = ["--batch-size", "16", "--workers", "0", "--lr", "1e-3", "--warmup-epochs", "0.5"]


@pytest.mark.slow
def test_distillation_recovers_pruned_accuracy(digits, tmp_path, capsys):
    out = tmp_path / "ft"
    # Unlabeled training images: the dense teacher's soft labels are the only signal.
    code, stdout, err = run(capsys, "finetune", digits / "pruned", "--data", digits / "train_flat", "--val", digits / "val",
                            "-o", out, "--epochs", "3", "--lr", "2e-3", "--warmup-epochs", "0.5", "--aug", "none",
                            "--workers", "0", "--json", tmp_path / "report.json")
    assert code == 0, err
    lines = metrics(out)
    assert [line["epoch"] for line in lines] == [0, 1, 2, 3]
    pruned, teacher = lines[0]["val_top1"], lines[0]["teacher_val_top1"]
    best = max(line["val_top1"] for line in lines[1:])
    print(f"teacher {teacher:.1f} %, pruned {pruned:.1f} %, fine-tuned {best:.1f} %")
    assert teacher >= 80.0, "the dense teacher should have learnt digits"
    assert best >= pruned + 10.0, f"fine-tuning did not recover accuracy: {pruned:.1f} % → {best:.1f} %"
    assert all("train_ce" not in line for line in lines[1:]), "unlabeled data must train on distillation only"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["best_value"] == pytest.approx(best) and report["pruned_val"]["top1"] == pytest.approx(pruned)
    assert "before fine-tuning" in stdout and "*best*" in stdout

    # best/ is an isodeploy folder: reloadable, same architecture, the spec still names the dense source.
    student = isodeploy.load(out / "best")
    spec = json.loads((out / "best" / "isodeploy.json").read_text())
    assert spec["source"]["weights"] == str(digits / "dense.safetensors")
    assert spec["finetune"]["epoch"] == report["best_epoch"] and spec["finetune"]["metrics"]["val_top1"] == pytest.approx(best)
    before = isodeploy.load(digits / "pruned")
    assert [p.shape for p in student.parameters()] == [p.shape for p in before.parameters()]
    trained = load_file(str(out / "best" / "model.safetensors"))
    assert any(not torch.equal(trained[k], v) for k, v in before.state_dict().items())


def test_resume_continues_exactly(tiny, tmp_path, capsys):
    common = ["--data", tiny / "data", "--val", tiny / "val", "--epochs", "2", "--aug", "timm", "--ema", "0.9", *TINY_ARGS]
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", tmp_path / "full", *common)
    assert code == 0, err
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", tmp_path / "split", *common, "--stop-after", "1")
    assert code == 0, err
    assert [line["epoch"] for line in metrics(tmp_path / "split")] == [0, 1]
    # The resumed half loads with a worker process: augmentation is seeded per sample, not per process.
    code, stdout, err = run(capsys, "finetune", tiny / "pruned", "-o", tmp_path / "split", *common, "--resume", "--workers", "1")
    assert code == 0, err
    assert "resuming" in stdout
    timing = {"seconds", "images_per_s"}
    full, split = metrics(tmp_path / "full"), metrics(tmp_path / "split")
    assert len(full) == len(split) == 3
    for a, b in zip(full, split):
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert full[2]["train_loss"] != full[1]["train_loss"]  # the test can fail: epochs differ
    for name in ("last", "best"):
        a = load_file(str(tmp_path / "full" / name / "model.safetensors"))
        b = load_file(str(tmp_path / "split" / name / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_resume_refuses_another_model_or_other_settings(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", tiny / "data", "--epochs", "1", *TINY_ARGS]
    assert run(capsys, "finetune", tiny / "pruned", "-o", out, *args)[0] == 0
    checkpoint = (out / "checkpoint.pt").read_bytes()
    code, _, err = run(capsys, "finetune", tiny / "other", "-o", out, *args, "--resume")
    assert code == 2 and "is a checkpoint of" in err and "other widths" in err, err
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", out, *args[:-2], "--lr", "5e-3", "--resume")
    assert code == 2 and "--lr is 0.005" in err, err
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", out, *args)
    assert code == 2 and "--resume" in err and "--force" in err, err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", out, *args, "--resume-from", tmp_path / "junk.pt")
    assert code == 2 and "could not be read" in err, err
    assert err.count("\n") == 1 and err.startswith("error: ")
    # --force with bad input still refuses before touching the earlier run.
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", out, "--data", tmp_path / "missing", "--force")
    assert code == 2 and "does not exist" in err, err
    assert (out / "checkpoint.pt").read_bytes() == checkpoint  # refused runs leave the run untouched
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", out, *args, "--force", "--seed", "3")
    assert code == 0, err
    assert (out / "checkpoint.pt").read_bytes() != checkpoint and len(metrics(out)) == 2


def test_bad_data_fails_in_one_line(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(3):
        (junk / f"{i}.png").write_bytes(b"\x89PNG not really" * i)
    val3 = tmp_path / "val3"
    for label in ("0", "1", "2"):
        (val3 / label).mkdir(parents=True)
        Image.new("RGB", (SIZE, SIZE)).save(val3 / label / "a.png")
    cases = [
        (["--data", tmp_path / "missing"], "does not exist"),
        (["--data", empty], "no images in"),
        (["--data", junk], "no readable image"),
        (["--data", tiny / "data", "--val", val3], "has 3 class folders but the model outputs 10"),
        (["--data", tiny / "data", "--val", tiny / "flat"], "accuracy needs an ImageFolder"),
        (["--data", tiny / "flat", "--teacher", "none"], "needs a teacher"),
        (["--data", tiny / "data", "--batch-size", "1000"], "lower --batch-size"),
        (["--data", tiny / "data", "--epochs", "0"], "--epochs must be"),
    ]
    for extra, message in cases:
        code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", out, "--workers", "0", *extra)
        assert code == 2 and message in err, (extra, err)
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert not (out / "checkpoint.pt").exists()
    code, _, err = run(capsys, "finetune", tiny / "data", "-o", out, "--data", tiny / "data")
    assert code == 2 and "not an isodeploy folder" in err, err
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", tiny / "pruned", "--data", tiny / "data")
    assert code == 2 and "-o must differ" in err, err


def test_unreadable_images_are_skipped_and_counted(tiny, tmp_path, capsys):
    data = tmp_path / "data"
    write_digits(data, np.arange(40), flat=True)
    (data / "broken.png").write_bytes(b"garbage")
    (data / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    code, _, err = run(capsys, "finetune", tiny / "pruned", "--data", data, "-o", out, "--epochs", "1", *TINY_ARGS,
                       "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "skipped 2 unreadable image(s)" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["train_images"] == 40 and report["skipped_images"] == 2 and report["best_metric"] == "train_loss"
    assert metrics(out)[0]["skipped"] == 2
    assert json.loads((out / "last" / "isodeploy.json").read_text())["source"]["name"] == VIT
    assert isinstance(isodeploy.load(out / "last"), torch.nn.Module)


def test_teacher_choices(tiny, tmp_path, capsys):
    args = ["--data", tiny / "data", "--epochs", "1", *TINY_ARGS]
    # Labels only: no teacher, cross-entropy alone.
    code, stdout, err = run(capsys, "finetune", tiny / "pruned", "-o", tmp_path / "ce", *args, "--teacher", "none")
    assert code == 0, err
    line = metrics(tmp_path / "ce")[1]
    assert "train_kd" not in line and line["train_loss"] == pytest.approx(line["train_ce"])
    # Another isodeploy folder with the same classes can teach.
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", tmp_path / "kd", *args, "--teacher", tiny / "other")
    assert code == 0, err
    assert "train_kd" in metrics(tmp_path / "kd")[1]
    # A teacher with other classes is refused before any training.
    code, _, err = run(capsys, "finetune", tiny / "pruned", "-o", tmp_path / "bad", *args, "--teacher", "resnet18",
                       "--teacher-weights", "random")
    assert code == 2 and "outputs 1000 classes but the student 10" in err, err
    assert not (tmp_path / "bad" / "checkpoint.pt").exists()
