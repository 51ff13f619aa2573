"""The task: scikit-learn's handwritten digits, upsampled to 32×32 RGB.

Why digits: it is a real image dataset (1,797 scanned digits, 10 classes) that ships inside the
scikit-learn wheel, so the benchmark needs no download and runs offline; it is small enough to train
and fine-tune dozens of models on two CPU cores. The split is stratified and fixed (seed 0) for every
run, so seeds vary the models, never the data. Images are written as PNG folders because
``isodeploy finetune`` (which the benchmark uses unchanged) reads ImageFolder trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = 32
SPLIT_SEED = 0
VAL_FRACTION = 0.25


@dataclass
class DigitsFolders:
    train: str  # ImageFolder tree: train/<digit>/<i>.png
    val: str
    train_images: int
    val_images: int


def split_indices(labels: np.ndarray, val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split: the same share of every digit goes to validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(len(members) * val_fraction))
        val.extend(members[:cut].tolist())
        train.extend(members[cut:].tolist())
    return np.array(sorted(train)), np.array(sorted(val))


def write_digits(root: Path) -> DigitsFolders:
    """Write the split as PNGs under ``root`` (skipped if already complete) and describe it."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images / 16.0 * 255).round().astype(np.uint8)
    train, val = split_indices(digits.target)
    for name, indices in (("train", train), ("val", val)):
        folder = root / name
        done = folder / ".complete"
        if done.exists():
            continue
        for i in indices:
            target = folder / str(digits.target[i])
            target.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(pixels[i]).resize((SIZE, SIZE), Image.BILINEAR).convert("RGB")
            image.save(target / f"{i:04d}.png")
        done.write_text(f"{len(indices)}\n")
    return DigitsFolders(train=str(root / "train"), val=str(root / "val"), train_images=len(train), val_images=len(val))


def load_tensors(folder: str, transform) -> tuple["torch.Tensor", "torch.Tensor"]:
    """All images of an ImageFolder tree through ``transform``, stacked in memory (the set is tiny)."""
    import torch
    from PIL import Image

    from isodeploy.pruning.calib import scan_images

    images = scan_images(Path(folder))
    xs = [transform(Image.open(p).convert("RGB")) for p in images.paths]
    return torch.stack(xs), torch.tensor(images.labels)
