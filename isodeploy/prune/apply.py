"""Physically remove channels: slice every parameter and buffer a group touches, then make each
module's attributes agree with its new shapes (no forward monkey-patching).

Index maps come from the grouper's trees, so a head removed from a (3, H, D) qkv output removes the
right 3·D rows, and a channel removed from a Swin patch-merging (2, 2, C) input removes 4 columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from isodeploy.graph.analysis import Grouping


@dataclass
class ModuleChange:
    """Integer attributes changed on one module, for the spec (so a reload can rebuild it)."""

    module: str
    attrs: dict[str, int | float | tuple] = field(default_factory=dict)
    notes: dict[str, float | str] = field(default_factory=dict)  # weight edits, not attributes


def _set_tensor(model: nn.Module, name: str, value: torch.Tensor) -> None:
    owner_name, _, attr = name.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    if attr in owner._parameters:
        old = owner._parameters[attr]
        owner._parameters[attr] = nn.Parameter(value.contiguous(), requires_grad=old.requires_grad)
    else:
        owner._buffers[attr] = value.contiguous()


def _get_tensor(model: nn.Module, name: str) -> torch.Tensor:
    owner_name, _, attr = name.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    return getattr(owner, attr)


def slice_tensors(model: nn.Module, grouping: Grouping, keep_by_atom: dict[int, list[int]]) -> set[str]:
    """Index-select every tensor dim that contains a pruned atom; returns the touched tensor names."""
    touched: set[str] = set()
    for (name, dim), tree in grouping.trees.items():
        if not keep_by_atom.keys() & set(tree.leaves()):
            continue
        tensor = _get_tensor(model, name)
        index = torch.tensor(tree.kept_indices(keep_by_atom), dtype=torch.long, device=tensor.device)
        with torch.no_grad():
            _set_tensor(model, name, torch.index_select(tensor.detach(), dim, index).clone())
        touched.add(name)
    return touched


def _new_size(grouping: Grouping, atoms: list[int], keep_by_atom: dict[int, list[int]]) -> int:
    tree = grouping.prop.atoms.tree(atoms)
    return tree.size_after(keep_by_atom)


def fix_modules(model: nn.Module, grouping: Grouping, keep_by_atom: dict[int, list[int]], touched: set[str]) -> list[ModuleChange]:
    """Update in/out features, channels, groups, norm shapes and attention attributes."""
    changes: dict[str, ModuleChange] = {}
    owners = {name.rpartition(".")[0] for name in touched}
    for path in sorted(owners):
        module = model.get_submodule(path) if path else model
        change = changes.setdefault(path, ModuleChange(module=path))
        _fix_standard_module(module, path, grouping, keep_by_atom, change)
    for path, dims in grouping.prop.norms.items():
        module = model.get_submodule(path) if path else model
        old = tuple(grouping.prop.atoms.tree(d).size for d in dims)
        new = tuple(_new_size(grouping, d, keep_by_atom) for d in dims)
        shape = getattr(module, "normalized_shape", None)
        # Only the module that owns this norm call (timm LayerNorm2d, RmsNorm, affine-free LayerNorm…).
        if new != old and shape is not None and tuple(shape) == old:
            _set(module, changes.setdefault(path, ModuleChange(module=path)), "normalized_shape", new)
    for path, info in grouping.prop.attention.items():
        module = model.get_submodule(path) if path else model
        heads = _new_size(grouping, info.heads, keep_by_atom)
        head_dim = _new_size(grouping, info.head_dim, keep_by_atom)
        value_dim = _new_size(grouping, info.value_dim, keep_by_atom) if info.value_dim else head_dim
        old_head_dim = grouping.prop.atoms.tree(info.head_dim).size
        change = changes.setdefault(path, ModuleChange(module=path))
        _fix_attention(module, heads, head_dim, value_dim, old_head_dim, change)
        if head_dim != old_head_dim and _is_fused_qkv(grouping, path, info):
            _preserve_temperature(module, heads, head_dim, old_head_dim, change)
    return [c for c in changes.values() if c.attrs or c.notes]


def _set(module: nn.Module, change: ModuleChange, attr: str, value: object) -> None:
    if hasattr(module, attr) and getattr(module, attr) != value:
        setattr(module, attr, value)
        change.attrs[attr] = value


def _fix_standard_module(module: nn.Module, path: str, grouping: Grouping, keep_by_atom: dict[int, list[int]],
                         change: ModuleChange) -> None:
    if isinstance(module, nn.Linear):
        _set(module, change, "in_features", module.weight.shape[1])
        _set(module, change, "out_features", module.weight.shape[0])
    elif isinstance(module, nn.modules.conv._ConvNd):
        info = grouping.prop.convs.get(path)
        groups = module.groups
        if info is not None and info.group_atom is not None:
            groups = _new_size(grouping, [info.group_atom], keep_by_atom)
        _set(module, change, "groups", groups)
        _set(module, change, "in_channels", module.weight.shape[1] * groups)
        _set(module, change, "out_channels", module.weight.shape[0])
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        tensor = module.weight if module.weight is not None else module.running_mean
        _set(module, change, "num_features", tensor.shape[0])
    elif isinstance(module, nn.GroupNorm) and module.weight is not None:
        _set(module, change, "num_channels", module.weight.shape[0])


def _fix_attention(module: nn.Module, heads: int, head_dim: int, value_dim: int, old_head_dim: int,
                   change: ModuleChange) -> None:
    """Keep a timm attention module consistent: the fused path uses 1/sqrt(head_dim), the unfused
    one ``self.scale``, so both are updated together (DESIGN §2)."""
    _set(module, change, "num_heads", heads)
    _set(module, change, "head_dim", head_dim)
    _set(module, change, "key_dim", head_dim)
    _set(module, change, "val_dim", value_dim)
    _set(module, change, "attn_dim", heads * value_dim)
    _set(module, change, "key_attn_dim", heads * head_dim)
    _set(module, change, "val_attn_dim", heads * value_dim)
    _set(module, change, "dh", heads * value_dim)
    scale = getattr(module, "scale", None)
    if isinstance(scale, float) and math.isclose(scale, old_head_dim ** -0.5, rel_tol=1e-6):
        _set(module, change, "scale", head_dim ** -0.5)


def _is_fused_qkv(grouping: Grouping, path: str, info) -> bool:
    """True when ``<path>.qkv.weight`` rows are laid out (3, heads, head_dim) with q first, as the
    grouper traced them: the only layout where the first third of the rows are the queries."""
    tree = grouping.trees.get((f"{path}.qkv.weight" if path else "qkv.weight", 0))
    if tree is None:
        return False

    def flat(t):  # products nest as reshapes split them: (3, (H, D)) is (3, H, D)
        return [x for p in t.parts for x in flat(p)] if t.kind == "prod" else [t]

    parts = flat(tree)
    find, factors = grouping.prop.atoms.find, grouping.prop.atoms.factors
    return (len(parts) == 3 and parts[0].kind == "leaf" and parts[0].size == 3
            and parts[1].leaves() == [find(a) for a in factors(info.heads)]
            and parts[2].leaves() == [find(a) for a in factors(info.head_dim)])


def _preserve_temperature(module: nn.Module, heads: int, head_dim: int, old_head_dim: int, change: ModuleChange) -> None:
    """Fold the change of softmax temperature into the query projection.

    Removing head dims changes the logit scale from 1/sqrt(D) to 1/sqrt(D'). Scaling the query rows
    by sqrt(D'/D) keeps q·k/sqrt(D) exactly where the removed dims carried nothing, and close to it
    otherwise, so head-dim pruning does not also sharpen every attention map. Applies to fused
    (3, H, D) ``qkv`` projections without a query norm (timm ViT/DeiT/Swin attention).
    """
    qkv = getattr(module, "qkv", None)
    q_norm = getattr(module, "q_norm", None)
    if not isinstance(qkv, nn.Linear) or qkv.out_features != 3 * heads * head_dim:
        return
    if q_norm is not None and not isinstance(q_norm, nn.Identity):
        return
    factor = math.sqrt(head_dim / old_head_dim)
    rows = heads * head_dim
    with torch.no_grad():
        qkv.weight[:rows].mul_(factor)
        if qkv.bias is not None:
            qkv.bias[:rows].mul_(factor)
    change.notes["query_rows_scaled_by"] = factor


def apply_keep(model: nn.Module, grouping: Grouping, keep: dict[int, list[int]]) -> list[ModuleChange]:
    """Prune ``model`` in place: ``keep`` maps group id → sorted channel indices to keep."""
    keep_by_atom = {}
    for gid, indices in keep.items():
        group = grouping.groups[gid]
        indices = sorted(int(i) for i in indices)
        if not indices:
            raise ValueError(f"group {gid} would be pruned to zero channels")
        if indices[-1] >= group.width or indices[0] < 0 or len(set(indices)) != len(indices):
            raise ValueError(f"group {gid}: kept indices must be distinct and within [0, {group.width})")
        if len(indices) < group.width:
            keep_by_atom[group.atom] = indices
    touched = slice_tensors(model, grouping, keep_by_atom)
    changes = fix_modules(model, grouping, keep_by_atom, touched)
    # Some modules cache tensors derived from parameters in eval mode (LeViT's attention biases);
    # a train/eval round trip is their documented way to drop such caches.
    was_training = model.training
    model.train(True)
    model.train(was_training)
    return changes
