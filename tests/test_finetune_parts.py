"""The pieces of fine-tuning on their own: the distillation loss, the schedule, reproducible augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from isodeploy.core.errors import IsodeployError
from isodeploy.train.config import FinetuneConfig
from isodeploy.train.data import EpochSampler, ImageDataset, ImageSet, train_transform
from isodeploy.train.dist import DistEnv
from isodeploy.train.distill import distill_loss
from isodeploy.train.optim import WarmupCosine, resolve_precision

CPU = torch.device("cpu")


def test_distill_loss_terms():
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 10, generator=gen), torch.randn(8, 10, generator=gen)
    labels = torch.randint(0, 10, (8,), generator=gen)
    # A student that matches its teacher has zero KD loss.
    loss, parts = distill_loss(teacher.clone(), teacher, None, temperature=3.0, kd_weight=0.5)
    assert float(loss) == pytest.approx(0.0, abs=1e-6) and set(parts) == {"kd"}
    # Unlabeled: KD alone, T² · KL(teacher_T ‖ student_T), whatever kd_weight says.
    t = 2.0
    p_t = F.softmax(teacher / t, dim=-1)
    expected_kd = float((p_t * (p_t.log() - F.log_softmax(student / t, dim=-1))).sum(-1).mean() * t * t)
    loss, parts = distill_loss(student, teacher, None, temperature=t, kd_weight=0.3)
    assert float(loss) == pytest.approx(expected_kd, rel=1e-5)
    # Labelled: the weighted sum of KD and cross-entropy.
    ce = float(F.cross_entropy(student, labels))
    loss, parts = distill_loss(student, teacher, labels, temperature=t, kd_weight=0.3)
    assert float(loss) == pytest.approx(0.3 * expected_kd + 0.7 * ce, rel=1e-5)
    assert float(parts["ce"]) == pytest.approx(ce, rel=1e-6)
    # No teacher: cross-entropy alone.
    loss, parts = distill_loss(student, None, labels, temperature=t, kd_weight=0.3)
    assert float(loss) == pytest.approx(ce, rel=1e-6) and set(parts) == {"ce"}


def test_warmup_cosine_schedule_and_state():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1.0)
    sched = WarmupCosine(opt, lr=1e-3, min_lr=1e-5, warmup_steps=4, total_steps=20)
    rates = []
    for _ in range(20):
        rates.append(sched.current)
        sched.step()
    assert rates[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert rates[4] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))  # cosine only goes down
    mid = 4 + (20 - 4 - 1) / 2
    assert sched.rate(math.floor(mid)) > 5.05e-4 > sched.rate(math.ceil(mid))
    again = WarmupCosine(torch.optim.AdamW([param], lr=1.0), lr=1e-3, min_lr=1e-5, warmup_steps=4, total_steps=20)
    again.load_state_dict({"step_count": 7, "warmup_steps": 4, "total_steps": 20})
    assert again.current == pytest.approx(rates[7])
    with pytest.raises(IsodeployError, match="schedule has 30 steps"):
        again.load_state_dict({"step_count": 7, "warmup_steps": 4, "total_steps": 30})


def test_augmentation_is_seeded_by_epoch_and_index(tmp_path):
    paths = []
    rng = np.random.default_rng(0)
    for i in range(4):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(paths[-1])
    images = ImageSet(root=str(tmp_path), paths=paths, labels=None, classes=[], skipped=0)
    transform = train_transform("timm", (3, 32, 32), (0.5,) * 3, (0.5,) * 3, "bicubic", 0.875)
    data = ImageDataset(images, transform, seed=0)
    torch.manual_seed(123)
    first = data[(1, 2)][0]
    torch.manual_seed(456)  # the global RNG state must not matter, and must be left alone
    state = torch.get_rng_state()
    assert torch.equal(data[(1, 2)][0], first)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(data[(2, 2)][0], first)  # a new epoch draws a new augmentation
    assert data[(1, 2)][1:] == (-1, 2, 0)  # unlabeled, index 2, no decode failure


def test_sampler_shards_disjointly_and_reshuffles():
    ranks = [EpochSampler(10, DistEnv(r, 3, r, CPU, "gloo"), seed=0) for r in range(3)]
    for sampler in ranks:
        sampler.set_epoch(4)
    items = [list(s) for s in ranks]
    assert all(len(x) == 3 and all(e == 4 for e, _ in x) for x in items)
    flat = [i for x in items for _, i in x]
    assert len(set(flat)) == 9  # trimmed to a multiple of the world size, no index twice
    ranks[0].set_epoch(5)
    assert [i for _, i in ranks[0]] != [i for _, i in items[0]]


def test_config_and_precision_checks():
    FinetuneConfig(student="s", data="d", output="o").validate()
    for bad, message in [({"epochs": 0}, "--epochs"), ({"kd_weight": 1.5}, "--kd-weight"), ({"aug": "heavy"}, "--aug"),
                         ({"stop_after": 11}, "--stop-after"), ({"ema_decay": 1.0}, "--ema")]:
        with pytest.raises(IsodeployError, match=message):
            FinetuneConfig(student="s", data="d", output="o", **bad).validate()
    assert resolve_precision("auto", CPU).dtype is None
    with pytest.raises(IsodeployError, match="needs a CUDA device"):
        resolve_precision("fp16", CPU)
