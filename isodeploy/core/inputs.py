"""Inputs for numeric checks and FP16 calibration: random normal samples and real images.

Random normal samples look like normalised images to a network's first layer; real images (``--data``)
add the activation statistics of actual content, which is what exposes FP16 range problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from isodeploy.core.errors import IsodeployError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".gif")
DEFAULT_CROP_PCT = 0.875


def random_samples(count: int, input_size: Sequence[int], seed: int = 0) -> np.ndarray:
    """``count`` standard-normal samples of shape ``input_size`` (C, H, W), reproducible by ``seed``."""
    return np.random.default_rng(seed).standard_normal((count, *input_size)).astype(np.float32)


def find_images(folder: Path, limit: int) -> list[Path]:
    """Up to ``limit`` image files under ``folder`` (recursive, sorted, so runs are repeatable)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IsodeployError(f"--data '{folder}' is not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise IsodeployError(f"--data '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files[:limit]


def load_image(path: Path, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float],
               crop_pct: float = DEFAULT_CROP_PCT) -> np.ndarray:
    """timm's eval transform: resize the short side to size/crop_pct (bicubic), centre-crop, normalise."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = input_size
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            scale = max(height, width) / crop_pct / min(img.size)
            resized = img.resize((max(width, round(img.size[0] * scale)), max(height, round(img.size[1] * scale))),
                                 Image.Resampling.BICUBIC)
    except (OSError, UnidentifiedImageError) as exc:
        raise IsodeployError(f"could not read image '{path}' ({type(exc).__name__}); remove it from --data") from exc
    left = (resized.size[0] - width) // 2
    top = (resized.size[1] - height) // 2
    array = np.asarray(resized.crop((left, top, left + width, top + height)), dtype=np.float32) / 255.0
    array = array.reshape(height, width, channels).transpose(2, 0, 1)
    return ((array - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]).astype(np.float32)


def image_samples(folder: Path, count: int, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Up to ``count`` preprocessed images from ``folder`` as one (N, C, H, W) array."""
    return np.stack([load_image(p, input_size, mean, std) for p in find_images(folder, count)])


def to_batches(samples: np.ndarray, batch_sizes: Sequence[int]) -> list[np.ndarray]:
    """Every sample at every batch size, in full batches of exactly ``b``: the last batch wraps around to
    the first samples, so a batch size larger than the sample count is still exercised."""
    out: list[np.ndarray] = []
    count = len(samples)
    for size in batch_sizes:
        if size < 1:
            raise IsodeployError(f"batch sizes must be ≥ 1, got {size}")
        for start in range(0, count, size):
            out.append(samples[np.arange(start, start + size) % count])
    return out
