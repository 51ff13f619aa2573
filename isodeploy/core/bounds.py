"""Upper bounds for every architecture size a *file* may give (spec kwargs, ONNX metadata).

A 1 KB spec with ``num_classes: 2000000`` builds a 1.5 GB head before anything can disagree with
the weights, and ``8e6`` is killed by the kernel with no error line. Each size a builder takes from a
file is checked here against a bound far beyond any real vision model, before anything is built; what
fits the bounds but not the machine is then refused by the memory estimate in
:mod:`isodeploy.core.limits` (the model is first built on PyTorch's ``meta`` device, which allocates
nothing, and its parameters are counted).
"""

from __future__ import annotations

import math
from typing import Any

from isodeploy.core.errors import IsodeployError

MAX_CLASSES = 100_000  # ImageNet-22k has 21 843
MAX_SIDE = 4096  # pixels of an input image side (timm's largest pretrained inputs are ~1024)
MAX_WIDTH = 16_384  # channels / embedding width (ViT-G is 1664, ConvNeXt-XXL 3072)
MAX_DEPTH = 512  # blocks (per stage or in all)
MAX_HEADS = 1024
MAX_LIST = 64  # entries of a per-stage list
MAX_MULT = 16.0  # width / MLP multipliers
MAX_TEXT = 64  # characters of a text option (global_pool)
TEXT_KEYS = {"global_pool", "act_layer", "norm_layer", "class_token", "pos_embed"}

#: key → (low, high, whether it is an integer); lists are checked element by element
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "num_classes": (0, MAX_CLASSES, True),
    "img_size": (1, MAX_SIDE, True), "image_size": (1, MAX_SIDE, True),
    "in_chans": (1, 64, True),
    "patch_size": (1, MAX_SIDE, True), "window_size": (1, MAX_SIDE, True),
    "embed_dim": (1, MAX_WIDTH, True), "hidden_dim": (1, MAX_WIDTH, True), "stem_width": (1, MAX_WIDTH, True),
    "dims": (1, MAX_WIDTH, True), "embed_dims": (1, MAX_WIDTH, True), "channels": (1, MAX_WIDTH, True),
    "key_dim": (1, MAX_WIDTH, True), "mlp_dim": (1, 4 * MAX_WIDTH, True),
    "depth": (0, MAX_DEPTH, True), "depths": (0, MAX_DEPTH, True), "num_layers": (0, MAX_DEPTH, True),
    "layers": (0, MAX_DEPTH, True),
    "num_heads": (1, MAX_HEADS, True),
    "mlp_ratio": (0, MAX_MULT, False), "mlp_ratios": (0, MAX_MULT, False),
    "width_mult": (0, MAX_MULT, False), "width_multiplier": (0, MAX_MULT, False), "channel_multiplier": (0, MAX_MULT, False),
    "drop_rate": (0, 1, False), "drop_path_rate": (0, 1, False), "dropout": (0, 1, False),
    # transformers' config fields (hf: sources)
    "num_labels": (1, MAX_CLASSES, True), "num_channels": (1, 64, True), "hidden_size": (1, MAX_WIDTH, True),
    "hidden_sizes": (1, MAX_WIDTH, True), "intermediate_size": (1, 4 * MAX_WIDTH, True), "embedding_size": (1, MAX_WIDTH, True),
    "num_hidden_layers": (0, MAX_DEPTH, True), "num_attention_heads": (1, MAX_HEADS, True), "num_stages": (1, MAX_LIST, True),
    "hidden_dropout_prob": (0, 1, False), "attention_probs_dropout_prob": (0, 1, False),
}


def _in_bounds(value: Any, low: float, high: float, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if integer and not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        return False
    return math.isfinite(value) and low <= value <= high and (integer or value > 0 or low == 0)


def check_size_kwarg(key: str, value: Any, where: str) -> None:
    """One line when a file's ``key`` is out of its bound (NaN, negative, absurdly large, too long a list)."""
    if isinstance(value, str):
        if key in TEXT_KEYS and len(value) > MAX_TEXT:  # a factory's own text kwargs (paths, names) are its business
            raise IsodeployError(f"{where}: '{key}' is {len(value)} characters long; the file was edited")
        return
    bound = _BOUNDS.get(key)
    if bound is None:
        return
    low, high, integer = bound
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values or len(values) > MAX_LIST or not all(_in_bounds(v, low, high, integer) for v in values):
        kind = "integers" if integer else "numbers"
        raise IsodeployError(f"{where}: '{key}' = {str(value)[:60]} is out of bounds ({kind} in {low:g}..{high:g}"
                             f"{f', at most {MAX_LIST} of them' if isinstance(value, (list, tuple)) else ''}); "
                             "the file was edited or is not from isodeploy: re-create it")
