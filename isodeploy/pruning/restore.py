"""Which module attributes a spec may restore on reload, and with which values.

Pruning changes widths only: the fix-ups in :mod:`isodeploy.pruning.fixups` set features, channels,
``groups``, head counts and widths, norm shapes and the attention ``scale`` that follows the head
width. A spec is a file anyone can edit, and its ``weights_sha256`` vouches for the weights, not for
the attributes: ``{"module": "conv1", "attrs": {"stride": [1, 1]}}`` or ``in_features: "abc"`` would
change what the model computes while the hash still matches. So a spec may restore only

* the attributes the built-in fix-ups set (:data:`BUILTIN`), or any plain attribute of a module
  whose type has a fix-up *the user* registered (that fix-up's attributes are the user's to restore);
* with the type the rebuilt module's attribute already has (an int stays a positive int, a shape a
  list of positive ints of the same length, a float a finite positive float);
* and the result must agree with the module's own tensors (features and channels with the weight
  shape, ``groups`` dividing the channels, ``scale`` equal to ``head_dim ** -0.5``).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from isodeploy.core.errors import IsodeployError

#: attribute names the built-in fix-ups set (pruning/fixups.py); nothing else comes from a spec
BUILTIN = frozenset({
    "in_features", "out_features", "groups", "in_channels", "out_channels", "num_features", "num_channels",
    "normalized_shape", "num_heads", "head_dim", "key_dim", "val_dim", "attn_dim", "key_attn_dim", "val_attn_dim",
    "dh", "scale", "embed_dim", "kdim", "vdim", "hidden_dim", "shape",
    "num_attention_heads", "attention_head_size", "all_head_size",  # Hugging Face attention
    "splits",  # timm MixedConv2d: the input split among its child convs
})


def _user_fixup_types() -> tuple[type, ...]:
    """Module types with a fix-up registered outside isodeploy (``isodeploy.register_fixup``)."""
    from isodeploy.pruning import fixups

    return tuple(t for t, fns in fixups.FIXUPS.items() if any(not fn.__module__.startswith("isodeploy.") for fn in fns))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def checked_value(module: nn.Module, attr: str, value: Any, path: str) -> Any:
    """The value to set for ``path.attr``, or one line saying why the spec may not set it."""
    where = f"the spec sets '{path}.{attr}' = {str(value)[:40]}"
    if attr not in BUILTIN and not isinstance(module, _user_fixup_types()):
        raise IsodeployError(f"{where}, which pruning never changes (restorable: widths, channels, groups, heads, norm "
                             "shapes, scale); the spec was edited: re-run 'isodeploy prune'")
    current = getattr(module, attr)
    if _is_count(current) or (isinstance(current, int) and not isinstance(current, bool)):
        if not _is_count(value):
            raise IsodeployError(f"{where}; it must be a positive integer like the model's {current}: the spec was edited")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise IsodeployError(f"{where}; it must be a finite positive number like the model's {current:g}: the spec was edited")
        return float(value)
    if isinstance(current, (tuple, list)) and all(_is_count(v) for v in current):
        if not isinstance(value, (list, tuple)) or len(value) != len(current) or not all(_is_count(v) for v in value):
            raise IsodeployError(f"{where}; it must be {len(current)} positive integers like the model's {list(current)}: "
                                 "the spec was edited")
        return tuple(value)
    raise IsodeployError(f"{where}, but the model's '{attr}' is a {type(current).__name__}, not a width; the spec was edited")


def check_consistent(module: nn.Module, path: str, restored: set[str]) -> None:
    """After restoring: the module's size attributes agree with its (resized) tensors."""
    def bad(what: str) -> IsodeployError:
        return IsodeployError(f"the spec's attributes of '{path}' disagree with its weights ({what}); the spec was edited: "
                              "re-run 'isodeploy prune'")

    weight = getattr(module, "weight", None)
    if isinstance(module, nn.Linear):
        if (module.out_features, module.in_features) != tuple(module.weight.shape):
            raise bad(f"in/out_features {module.in_features}/{module.out_features}, weight {list(module.weight.shape)}")
    elif isinstance(module, nn.modules.conv._ConvNd):
        groups = module.groups
        inner, outer = (module.weight.shape[1] * groups, module.weight.shape[0])
        ins, outs = (outer, inner) if module.transposed else (inner, outer)
        if (module.in_channels, module.out_channels) != (ins, outs) or module.in_channels % groups or module.out_channels % groups:
            raise bad(f"in/out_channels {module.in_channels}/{module.out_channels}, groups {groups}, weight {list(module.weight.shape)}")
    elif isinstance(module, nn.GroupNorm):
        if weight is not None and module.num_channels != weight.shape[0] or module.num_channels % module.num_groups:
            raise bad(f"num_channels {module.num_channels}, num_groups {module.num_groups}")
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        tensor = weight if weight is not None else module.running_mean
        if tensor is not None and module.num_features != tensor.shape[0]:
            raise bad(f"num_features {module.num_features}, weight {list(tensor.shape)}")
    elif isinstance(module, nn.LayerNorm) and weight is not None and tuple(module.normalized_shape) != tuple(weight.shape):
        raise bad(f"normalized_shape {list(module.normalized_shape)}, weight {list(weight.shape)}")
    if "splits" in restored:
        convs = [c.in_channels for c in module.children() if isinstance(c, nn.modules.conv._ConvNd)]
        if list(module.splits) != convs:
            raise bad(f"splits {list(module.splits)}, child convs' in_channels {convs}")
    if "scale" in restored:
        dims = [getattr(module, a) for a in ("head_dim", "key_dim") if _is_count(getattr(module, a, None))]
        heads, qkv = getattr(module, "num_heads", None), getattr(module, "qkv", None)
        if not dims and _is_count(heads) and isinstance(qkv, nn.Linear) and qkv.out_features % (3 * heads) == 0:
            dims = [qkv.out_features // (3 * heads)]  # timm's window attention keeps no head_dim attribute
        if dims and not any(math.isclose(module.scale, d ** -0.5, rel_tol=1e-6) for d in dims):
            raise bad(f"scale {module.scale:g} is not head_dim ** -0.5 (head_dim {dims[0] if dims else None})")
