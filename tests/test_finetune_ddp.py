"""`torchrun --nproc_per_node 2 -m isodeploy finetune`: DDP on gloo (CPU), sharded data, rank-0-only output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from isodeploy.pruning.pruner import prune_model, save_pruned
from isodeploy.pruning.plan import PruneConfig
from isodeploy.loading import load_model


def _images(folder, count: int) -> None:
    """Labelled 32×32 images: class k has brightness around 60·k, so there is something to learn."""
    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % 4
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = np.clip(rng.normal(60 * label + 30, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / str(label) / f"{i:03d}.png")


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this torch build has no gloo backend")
def test_two_cpu_ranks_share_the_data_and_rank0_writes_once(tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    loaded = load_model("deit_tiny_patch16_224", weights="random", img_size=32, patch_size=8, depth=2,
                        embed_dim=32, num_heads=2, num_classes=4)
    save_pruned(prune_model(loaded, PruneConfig(ratio=0.5, round_to=8)), tmp_path / "student")
    _images(tmp_path / "data", 42)
    _images(tmp_path / "val", 12)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "isodeploy", "finetune", str(tmp_path / "student"),
           "--data", str(tmp_path / "data"), "--val", str(tmp_path / "val"), "-o", str(out), "--epochs", "2",
           "--batch-size", "7", "--workers", "0", "--aug", "light", "--log-samples", "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    # Both ranks trained, on disjoint halves of the data, reshuffled each epoch.
    seen = {}
    for rank in (0, 1):
        lines = [json.loads(x) for x in (out / "samples" / f"rank-{rank}.jsonl").read_text().splitlines()]
        assert [line["epoch"] for line in lines] == [1, 2]
        seen[rank] = [line["indices"] for line in lines]
    for epoch in range(2):
        a, b = set(seen[0][epoch]), set(seen[1][epoch])
        assert len(seen[0][epoch]) == len(seen[1][epoch]) == 21 and len(a) == 21 and len(b) == 21
        assert not a & b and len(a | b) == 42
    assert seen[0][0] != seen[0][1]

    # Rank 0 alone wrote: one checkpoint, no stray temp files, one line per epoch in the log.
    assert sorted(p.name for p in out.iterdir()) == ["best", "checkpoint.pt", "last", "metrics.jsonl", "samples", "summary.json"]
    assert not list(out.rglob("*.tmp")) and not [p for p in out.iterdir() if p.name.startswith(".")]
    assert proc.stdout.count("epoch 1/2 ") == 1 and proc.stdout.count("epoch 2/2 ") == 1, proc.stdout
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["settings"]["world_size"] == 2
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["world_size"] == 2 and report["epochs_done"] == 2
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1, 2]
    assert lines[1]["images"] == 42 and lines[0]["val_top1"] is not None and lines[2]["val_top1"] >= 0
    # Validation is sharded without padding: the counts add up to the whole set exactly.
    assert report["final_val"]["images"] == 12
