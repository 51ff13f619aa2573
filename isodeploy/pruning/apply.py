"""Physically remove channels: slice every parameter and buffer a group touches, then make each
module's attributes agree with its new shapes through the fix-up registry (:mod:`isodeploy.pruning.fixups`;
no forward monkey-patching). Tied parameters (one tensor under several names) are sliced once and
stay tied.

Index maps come from the grouper's trees, so a head removed from a (3, H, D) qkv output removes the
right 3·D rows, and a channel removed from a Swin patch-merging (2, 2, C) input removes 4 columns.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from isodeploy.graph.analysis import Grouping
from isodeploy.pruning.fixups import FixupContext, ModuleChange, fix_modules, register_fixup
from isodeploy.pruning import standardised as _standardised  # noqa: F401  (registers the standardised-conv fix-up)


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


def slice_tensors(model: nn.Module, grouping: Grouping, keep_by_atom: dict[int, list[int]],
                  before: dict[str, torch.Tensor] | None = None) -> set[str]:
    """Index-select every tensor dim that contains a pruned atom; returns the touched tensor names.
    ``before`` (when given) receives each touched tensor as it was, for fix-ups that compensate."""
    touched: set[str] = set()
    aliases = tied_aliases(model)
    for (name, dim), tree in grouping.trees.items():
        if not keep_by_atom.keys() & set(tree.leaves()):
            continue
        tensor = _get_tensor(model, name)
        if before is not None:
            before.setdefault(name, tensor)
        index = torch.tensor(tree.kept_indices(keep_by_atom), dtype=torch.long, device=tensor.device)
        with torch.no_grad():
            _set_tensor(model, name, torch.index_select(tensor.detach(), dim, index).clone())
        touched.add(name)
        for alias in aliases.get(name, []):  # a shared module or tied weight: one tensor, one slice
            owner_name, _, attr = alias.rpartition(".")
            owner = model.get_submodule(owner_name) if owner_name else model
            store = owner._parameters if attr in owner._parameters else owner._buffers
            store[attr] = _get_tensor(model, name)
            touched.add(alias)
    return touched


def tied_aliases(model: nn.Module, symmetric: bool = True) -> dict[str, list[str]]:
    """Names of a tensor held under several names (shared modules, tied weights) → its other names.

    ``symmetric``: every name maps to the others (the trace may use any of them); otherwise only the
    first name maps, to the rest (what a save records).
    """
    names: dict[int, list[str]] = {}
    for name, tensor in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False)):
        if tensor is not None:
            names.setdefault(id(tensor), []).append(name)
    out: dict[str, list[str]] = {}
    for group in names.values():
        if len(group) > 1:
            for name in group if symmetric else group[:1]:
                out[name] = [n for n in group if n != name]
    return out


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


@register_fixup(nn.Module)
def preserve_temperature(module: nn.Module, ctx: FixupContext) -> None:
    """Runs after :func:`~isodeploy.pruning.fixups.attention_widths` (registered later for nn.Module)."""
    info = ctx.attention
    if info is None:
        return
    head_dim, old_head_dim = ctx.new_size(info.head_dim), ctx.old_size(info.head_dim)
    if head_dim != old_head_dim and _is_fused_qkv(ctx.grouping, ctx.path, info):
        _preserve_temperature(module, ctx.new_size(info.heads), head_dim, old_head_dim, ctx.change)


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
    before: dict[str, torch.Tensor] = {}
    touched = slice_tensors(model, grouping, keep_by_atom, before)
    changes = fix_modules(model, grouping, keep_by_atom, touched, before)
    # Some modules cache tensors derived from parameters in eval mode (LeViT's attention biases);
    # a train/eval round trip is their documented way to drop such caches.
    was_training = model.training
    model.train(True)
    model.train(was_training)
    return changes
