"""Calibration images for Taylor importance: an ImageFolder tree, a flat folder, or synthetic noise.

Unreadable images are skipped and counted; a folder with no usable image is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from isodeploy.core.errors import IsodeployError
from isodeploy.core.inputs import IMAGE_SUFFIXES  # one list of image types for every command


@dataclass
class ImageList:
    """Image paths with optional class labels (ImageFolder layout) and a count of what was skipped."""

    paths: list[Path]
    labels: list[int] | None
    classes: list[str]
    skipped: int = 0


def scan_images(root: Path) -> ImageList:
    """Find images: ``root/<class>/*`` gives labels, images directly under ``root`` give none."""
    root = Path(root)
    if not root.exists():
        raise IsodeployError(f"calibration/data folder '{root}' does not exist")
    if not root.is_dir():
        raise IsodeployError(f"'{root}' is not a folder of images")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_dirs:
        paths, labels = [], []
        for label, folder in enumerate(class_dirs):
            _check_readable(folder)  # rglob skips a folder it cannot read without a word
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(path)
                    labels.append(label)
        result = ImageList(paths, labels, [d.name for d in class_dirs])
    else:
        paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        result = ImageList(paths, None, [])
    if not result.paths:
        raise IsodeployError(f"no images in '{root}' (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return result


def _check_readable(folder: Path) -> None:
    """A class folder (and every folder under it) must be listable: one that is not would silently
    drop a whole class from the calibration set."""
    import os

    for current in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        try:
            with os.scandir(current):
                pass
        except OSError as exc:
            raise IsodeployError(f"cannot read the image folder '{current}': {exc.strerror or exc}; fix its permissions "
                                 "or move it out of the data folder") from None


def load_image(path: Path, size: tuple[int, int], mean, std) -> torch.Tensor | None:
    """The same timm eval preprocessing as ``verify --data``; None for a file that can't be read."""
    from isodeploy.core.inputs import load_image as load_eval_image

    try:
        array = load_eval_image(path, (3, *size), mean, std)
    except IsodeployError:
        return None
    return torch.from_numpy(array)


def calibration_batches(source: str, input_size: tuple[int, int, int], mean, std, batches: int,
                        batch_size: int = 16, seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield up to ``batches`` batches of (images, labels or None)."""
    if batches < 1:
        raise IsodeployError(f"--calib-batches must be ≥ 1; got {batches}")
    gen = torch.Generator().manual_seed(seed)
    if source == "synthetic":
        for _ in range(batches):
            yield torch.randn(batch_size, *input_size, generator=gen), None
        return
    images = scan_images(Path(source))
    order = torch.randperm(len(images.paths), generator=gen).tolist()
    batch, labels, produced, skipped = [], [], 0, 0
    for i in order:
        tensor = load_image(images.paths[i], input_size[1:], mean, std)
        if tensor is None:
            skipped += 1
            continue
        batch.append(tensor)
        if images.labels is not None:
            labels.append(images.labels[i])
        if len(batch) == batch_size:
            yield torch.stack(batch), (torch.tensor(labels) if labels else None)
            batch, labels, produced = [], [], produced + 1
            if produced == batches:
                break
    if batch and produced < batches:
        produced += 1
        yield torch.stack(batch), (torch.tensor(labels) if labels else None)
    if produced == 0:
        raise IsodeployError(f"no readable image in '{source}' ({skipped} unreadable files skipped)")
    if skipped:
        import sys

        print(f"warning: skipped {skipped} unreadable image(s) in {source}", file=sys.stderr)
