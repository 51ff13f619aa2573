"""Images for fine-tuning: find them, drop the unreadable ones, augment reproducibly, shard across ranks.

Folders are scanned with :func:`isodeploy.pruning.calib.scan_images` (ImageFolder tree → labels, flat
folder → none). Augmentation is timm's. Each sample's random transform is seeded by
(seed, epoch, index), so the same epoch yields the same pixels whether it runs in one go, after a
``--resume``, in any DataLoader worker, or on any rank.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from isodeploy.core.errors import IsodeployError
from isodeploy.pruning.calib import scan_images
from isodeploy.train.dist import DistEnv

MAX_SUBSTITUTES = 32  # a sample that fails to decode is replaced by the next index, at most this many times
NO_LABEL = -1


@dataclass
class ImageSet:
    """Usable images of one folder: paths, labels (None for a flat folder), class names, what was skipped."""

    root: str
    paths: list[str]
    labels: list[int] | None
    classes: list[str]
    skipped: int

    @property
    def labelled(self) -> bool:
        return self.labels is not None


def _opens(path: str) -> bool:
    """Whether PIL recognises the file (reads the header only, so probing a large set stays cheap)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size[0] > 0 and img.size[1] > 0
    except Exception:  # PIL raises many types for junk files
        return False


def scan_usable(root: str, env: DistEnv, what: str = "--data") -> ImageSet:
    """Scan ``root`` and drop files PIL can't open; ranks probe a share each and pool the results."""
    path = Path(root)
    if not path.exists():
        raise IsodeployError(f"{what} folder '{root}' does not exist")
    found = scan_images(path)  # raises for a non-folder or a folder without images
    paths = [str(p) for p in found.paths]
    bad_local = [i for i in range(env.rank, len(paths), env.world) if not _opens(paths[i])]
    bad = {i for part in env.gather(bad_local) for i in part}
    keep = [i for i in range(len(paths)) if i not in bad]
    if not keep:
        raise IsodeployError(f"no readable image in {what} '{root}' ({len(bad)} unreadable file(s) skipped)")
    labels = [found.labels[i] for i in keep] if found.labels is not None else None
    return ImageSet(root=str(root), paths=[paths[i] for i in keep], labels=labels, classes=list(found.classes), skipped=len(bad))


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A seed unique to (run seed, epoch, sample) that is stable across processes (no ``hash()``)."""
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) % (2**63 - 1)


@contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator, ``random`` and numpy (timm's augmentations use all three), then restore them.

    ``default_generator.manual_seed`` rather than ``torch.manual_seed``: the latter also seeds every CUDA
    device and costs ~100× more, once per image.
    """
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])


def train_transform(aug: str, input_size: tuple[int, int, int], mean, std, interpolation: str, crop_pct: float) -> Callable:
    """timm's training transforms: ``timm`` (its defaults), ``light`` (milder crops, no colour jitter) or ``none``."""
    from timm.data import create_transform

    if aug == "none":
        return eval_transform(input_size, mean, std, interpolation, crop_pct)
    extra = {"scale": (0.35, 1.0), "color_jitter": 0.0} if aug == "light" else {}
    return create_transform(input_size, is_training=True, mean=mean, std=std, interpolation=interpolation, **extra)


def eval_transform(input_size: tuple[int, int, int], mean, std, interpolation: str, crop_pct: float) -> Callable:
    """timm's evaluation transform: resize to size / crop_pct, centre crop, normalise."""
    from timm.data import create_transform

    return create_transform(input_size, is_training=False, mean=mean, std=std, interpolation=interpolation, crop_pct=crop_pct)


class ImageDataset(Dataset):
    """Items are keyed by ``(epoch, index)``; an item is (image tensor, label or -1, index, decode failures).

    ``augment`` False (evaluation) skips the per-sample seeding: the transform draws no random numbers.
    """

    def __init__(self, images: ImageSet, transform: Callable, seed: int, augment: bool = True) -> None:
        self.images = images
        self.transform = transform
        self.seed = seed
        self.augment = augment

    def __len__(self) -> int:
        return len(self.images.paths)

    def _decode(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.images.paths[i]) as img:
                return img.convert("RGB")
        except Exception:  # truncated or corrupt data that passed the header probe
            return None

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int, int]:
        epoch, index = key
        n = len(self.images.paths)
        for attempt in range(min(MAX_SUBSTITUTES, n)):
            i = (index + attempt) % n
            img = self._decode(i)
            if img is None:
                continue
            if self.augment:
                with seeded_rng(sample_seed(self.seed, epoch, index)):
                    tensor = self.transform(img)
            else:
                tensor = self.transform(img)
            label = self.images.labels[i] if self.images.labels is not None else NO_LABEL
            return tensor, label, index, attempt
        raise RuntimeError(f"{MAX_SUBSTITUTES} images in a row from '{self.images.paths[index]}' on could not be decoded")


class EpochSampler(Sampler):
    """A :class:`DistributedSampler` whose items carry the epoch, for per-sample seeding in any worker.

    Shuffling is seeded by (seed, epoch); every rank gets a disjoint share (``drop_last`` trims the set
    to a multiple of the world size so no rank repeats another's images).
    """

    def __init__(self, size: int, env: DistEnv, seed: int, shuffle: bool = True) -> None:
        self.inner = DistributedSampler(range(size), num_replicas=env.world, rank=env.rank, shuffle=shuffle,
                                        seed=seed, drop_last=True)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


class ShardSampler(Sampler):
    """Evaluation: rank r takes indices r, r + world, …; no padding, so summed counts are exact."""

    def __init__(self, size: int, env: DistEnv) -> None:
        self.indices = list(range(env.rank, size, env.world))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((0, i) for i in self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def default_workers() -> int:
    """Up to 4 loader workers per process, never more than the cores each local process has."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(4, per_process - 1))


def make_loader(dataset: ImageDataset, sampler: Sampler, batch_size: int, workers: int | None, env: DistEnv,
                drop_last: bool) -> DataLoader:
    workers = default_workers() if workers is None else workers
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last,
                      pin_memory=env.device.type == "cuda", persistent_workers=workers > 0)
