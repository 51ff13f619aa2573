"""Couplings that a module's *code* imposes and a static trace cannot see, keyed by module type.

``nn.MultiheadAttention`` derives its head width from its *input* width (``head_dim = embed_dim //
num_heads`` with ``embed_dim = query.shape[-1]``): the trace sees two independent widths, the code
needs the model width to equal heads × head_dim. A constraint states such a coupling on the atoms
after propagation, so the groups come out right instead of the self-check freezing them later.
Users add their own with :func:`register_constraint` (see ``docs/grouper.md``).
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import fx, nn

from isodeploy.graph.atoms import AlignmentError
from isodeploy.graph.propagate import Propagation

Constraint = Callable[[Propagation, str, nn.Module], None]
_CONVS = (torch.ops.aten.conv2d, torch.ops.aten.convolution)
CONSTRAINTS: dict[type, list[Constraint]] = {}


def register_constraint(module_type: type) -> Callable[[Constraint], Constraint]:
    """Register ``fn(prop, path, module)`` for every module of ``module_type`` (public API)."""

    def decorate(fn: Constraint) -> Constraint:
        CONSTRAINTS.setdefault(module_type, []).append(fn)
        return fn

    return decorate


def apply_constraints(prop: Propagation, model: nn.Module, tie_attention: set[str] | frozenset[str] = frozenset()) -> None:
    """Run the registered constraints, and tie the attention modules at ``tie_attention`` to their input."""
    for info in prop.attention.values():
        pick_heads(prop, info)
    for path in sorted(tie_attention):
        attention_input_is_heads_times_head_dim(prop, path)
    for path, module in model.named_modules():
        for klass in type(module).__mro__:
            for fn in CONSTRAINTS.get(klass, []):
                fn(prop, path, module)


def pick_heads(prop: Propagation, info) -> None:
    """Attention with more than one batch dim after the first (NesT: (B, heads, blocks, N, E)): the
    heads are the one dim that came from a weight's channels. Known only after the walk, when the
    others (image blocks, spatial dims) have been frozen; until then the rule assumed the last."""
    if len(info.batch_dims) < 2 or not all(prop.atoms.frozen_reason(a) for a in info.heads):
        return
    free = [d for d in info.batch_dims if d and not all(prop.atoms.frozen_reason(a) for a in d)]
    if len(free) == 1:
        info.heads = free[0]
        prop.atoms.tag(free[0], "heads")


def _freeze_all(prop: Propagation, dims: list[list[int]], reason: str) -> None:
    prop.atoms.freeze([a for d in dims for a in d], reason)


@register_constraint(nn.MultiheadAttention)
def multihead_attention(prop: Propagation, path: str, module: nn.MultiheadAttention) -> None:
    """The model width of an ``nn.MultiheadAttention`` is its heads × head_dim, row-major."""
    prefix = f"{path}." if path else ""
    weight = prop.state_dims.get(f"{prefix}in_proj_weight") or prop.state_dims.get(f"{prefix}q_proj_weight")
    info = prop.attention.get(path)
    if weight is None:
        return
    if info is None or not module._qkv_same_embed_dim:
        _freeze_all(prop, weight, f"nn.MultiheadAttention at {path or 'the model'} (separate k/v widths or no attention traced)")
        return
    try:
        prop.atoms.unify(weight[1], info.heads + info.head_dim)
    except AlignmentError as exc:
        _freeze_all(prop, [weight[1], info.heads, info.head_dim],
                    f"nn.MultiheadAttention at {path or 'the model'}: width ≠ heads × head_dim ({exc})")


def _calls_inside(prop: Propagation, path: str, ops: tuple) -> Iterator[fx.Node]:
    """The traced calls of ``ops`` made inside the module at ``path`` (or one of its children), in order."""
    prefix = f"{path}." if path else ""
    for node in prop.traced.graph.nodes:
        if node.op != "call_function" or getattr(node.target, "overloadpacket", None) not in ops:
            continue
        module = prop.traced.module_of(node)
        if module == path or module.startswith(prefix):
            yield node


def attention_input_is_heads_times_head_dim(prop: Propagation, path: str) -> None:
    """For attention code that derives its head width from its input (``qkv.reshape(B, N, 3,
    self.num_heads, C // self.num_heads)`` with ``C = x.shape[-1]``, as in CaiT, XCiT, PVT, Twins…):
    the module's input width is heads × head_dim. Applied on request, when the self-check showed a
    module of that type breaks otherwise."""
    info = prop.attention.get(path)
    if info is None:
        return
    for node in _calls_inside(prop, path, (torch.ops.aten.linear,)):
        width = prop.dims_of(node.args[0])
        if not width:
            return
        try:
            prop.atoms.unify(width[-1], info.heads + info.head_dim)
        except AlignmentError as exc:
            _freeze_all(prop, [width[-1], info.heads, info.head_dim], f"attention at {path}: width ≠ heads × head_dim ({exc})")
            return
        keys_reduced_at_input_width(prop, path, width[-1])
        return


def keys_reduced_at_input_width(prop: Propagation, path: str, width: list[int]) -> None:
    """The same code reads the input width ``C`` for a spatial reduction of the keys too (PVT, PVT-v2,
    Twins, SegFormer: ``self.sr(x.reshape(B, C, H, W)).reshape(B, C, -1)``): a conv inside the module
    that maps the input width to as many channels must keep that width."""
    roots = sorted(prop.atoms.find(a) for a in width)
    for node in _calls_inside(prop, path, _CONVS):
        x, out = prop.dims_of(node.args[0]), prop.dims_of(node)
        if not x or not out or len(x) < 2 or len(out) < 2 or sorted(prop.atoms.find(a) for a in x[1]) != roots:
            continue
        if prop.atoms.tree(out[1]).size != prop.atoms.tree(x[1]).size:
            continue
        try:
            prop.atoms.unify(out[1], x[1])
        except AlignmentError as exc:
            _freeze_all(prop, [out[1], x[1]], f"attention at {path}: key reduction ≠ input width ({exc})")


@register_constraint(nn.Module)
def one_head_width_for_query_key_and_value(prop: Propagation, path: str, module: nn.Module) -> None:
    """Hugging Face attention views query, key and value with one attribute (``.view(*shape, -1,
    self.head_dim)``; 4.x: ``attention_head_size``), so the value's head width must stay the query's:
    the trace sees two independent widths, the code has one."""
    info = prop.attention.get(path)
    if info is None or not info.value_dim or not type(module).__module__.startswith("transformers."):
        return
    if not any(isinstance(getattr(module, a, None), int) for a in ("head_dim", "attention_head_size")):
        return
    try:
        prop.atoms.unify(info.value_dim, info.head_dim)
    except AlignmentError as exc:
        _freeze_all(prop, [info.head_dim, info.value_dim], f"attention at {path}: one head width for query and value ({exc})")


#: weight-standardised module types (``module.qualname`` anywhere in the MRO) whose pruned fan-in a
#: fix-up handles, and how (:mod:`isodeploy.pruning.standardised`): "gain" folds the variance change
#: into the type's gain (timm's ScaledStdConv2d), "bake" replaces the forward by a plain conv over the
#: dense standardised weight (types without a gain). Names, not types: transformers stays unimported.
RESTANDARDISED: dict[str, str] = {
    "timm.layers.std_conv.ScaledStdConv2d": "gain",
    "timm.layers.std_conv.ScaledStdConv2dSame": "gain",
    "timm.layers.std_conv.StdConv2d": "bake",
    "timm.layers.std_conv.StdConv2dSame": "bake",
    "transformers.models.bit.modeling_bit.WeightStandardizedConv2d": "bake",
}


def restandardisation(module: nn.Module) -> str | None:
    """How a pruned fan-in of this module's standardised weight is handled ("gain", "bake"), or None."""
    for klass in type(module).__mro__:
        how = RESTANDARDISED.get(f"{klass.__module__}.{klass.__qualname__}")
        if how:
            return how
    return None


@register_constraint(nn.Module)
def standardised_fan_in(prop: Propagation, path: str, module: nn.Module) -> None:
    """A weight standardised in forward (``F.batch_norm(self.weight.reshape(1, out, -1), training=True)``)
    is normalised over its fan-in: removing input channels re-centres and re-scales every kept weight.
    Output channels are exact (one row each); the fan-in is frozen unless RESTANDARDISED names the type."""
    dims = prop.standardised.get(path)
    if dims and restandardisation(module) is None:
        _freeze_all(prop, dims, f"fan-in of the weight standardised in forward at {path or 'the model'} "
                                f"({type(module).__name__}): pruning it re-standardises every kept weight and no fix-up compensates")
