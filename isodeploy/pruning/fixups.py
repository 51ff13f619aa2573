"""Module fix-ups by module type: make a module's attributes agree with its sliced tensors.

Slicing changes tensors; a module's *code* may still read widths from attributes (``in_features``,
``num_heads``, ``normalized_shape``, torchvision ViT's ``hidden_dim``, a layer-scale's ``shape``).
Each fix-up is registered for a module class and runs for every module of that class (or a
subclass) whose tensors, attention or norm the plan changed. The slicer knows no attribute names.
Users register their own with :func:`register_fixup` (see ``docs/grouper.md``); whatever no fix-up
covers is caught by the self-check in :mod:`isodeploy.pruning.checked_apply`, which freezes the class.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from isodeploy.graph.analysis import Grouping
from isodeploy.graph.propagate import AttentionInfo


@dataclass
class ModuleChange:
    """Attributes changed on one module, for the spec (so a reload can rebuild it)."""

    module: str
    attrs: dict[str, int | float | tuple] = field(default_factory=dict)
    notes: dict[str, float | str] = field(default_factory=dict)  # weight edits, not attributes


@dataclass
class FixupContext:
    """What a fix-up may know about its module: old and new widths from the grouper's atoms."""

    path: str
    grouping: Grouping
    keep_by_atom: dict[int, list[int]]
    change: ModuleChange
    attention: AttentionInfo | None = None
    norm_dims: list[list[int]] | None = None
    #: tensor name → the tensor as it was before slicing (the dense values, for fix-ups that compensate)
    before: dict = field(default_factory=dict)

    def new_size(self, atoms: list[int]) -> int:
        return self.grouping.prop.atoms.tree(atoms).size_after(self.keep_by_atom)

    def old_size(self, atoms: list[int]) -> int:
        return self.grouping.prop.atoms.tree(atoms).size

    def set(self, module: nn.Module, attr: str, value: object) -> None:
        """Set ``attr`` if the module has it and the value changes; record it for the spec."""
        if hasattr(module, attr) and not callable(getattr(module, attr)) and getattr(module, attr) != value:
            setattr(module, attr, value)
            self.change.attrs[attr] = value


Fixup = Callable[[nn.Module, FixupContext], None]
FIXUPS: dict[type, list[Fixup]] = {}


def register_fixup(module_type: type) -> Callable[[Fixup], Fixup]:
    """Register ``fn(module, ctx)`` for ``module_type`` and its subclasses (public API).

    Registering the same function twice for one type warns; several different fix-ups per type run in
    registration order, most specific class first.
    """

    def decorate(fn: Fixup) -> Fixup:
        existing = FIXUPS.setdefault(module_type, [])
        names = [f"{f.__module__}.{f.__qualname__}" for f in existing]
        if f"{fn.__module__}.{fn.__qualname__}" in names:
            warnings.warn(f"isodeploy: fix-up {fn.__qualname__} is already registered for {module_type.__name__}", stacklevel=2)
            existing[:] = [f for f in existing if f"{f.__module__}.{f.__qualname__}" != f"{fn.__module__}.{fn.__qualname__}"]
        existing.append(fn)
        return fn

    return decorate


def run_fixups(module: nn.Module, ctx: FixupContext) -> None:
    for klass in type(module).__mro__:
        for fn in FIXUPS.get(klass, []):
            fn(module, ctx)


def fix_modules(model: nn.Module, grouping: Grouping, keep_by_atom: dict[int, list[int]], touched: set[str],
                before: dict | None = None) -> list[ModuleChange]:
    """Run the fix-ups of every module whose tensors were sliced, or whose attention or norm changed."""
    prop = grouping.prop
    direct = {name.rpartition(".")[0] for name in touched} | set(prop.attention) | set(prop.norms)
    paths = {".".join(p.split(".")[:i]) for p in direct for i in range(len(p.split(".")) + 1)} if direct else set()
    changes: list[ModuleChange] = []
    # Children first: a parent's fix-up may read its children's new attributes (qkv.out_features).
    for path in sorted(paths, key=lambda p: (-p.count(".") - bool(p), p)):
        try:
            module = model.get_submodule(path) if path else model
        except AttributeError:  # a functional call traced at a path that owns no module
            continue
        ctx = FixupContext(path=path, grouping=grouping, keep_by_atom=keep_by_atom, change=ModuleChange(module=path),
                           attention=prop.attention.get(path), norm_dims=prop.norms.get(path), before=before or {})
        run_fixups(module, ctx)
        if ctx.change.attrs or ctx.change.notes:
            changes.append(ctx.change)
    return changes


# -- built-in fix-ups -----------------------------------------------------------------------------------
@register_fixup(nn.Linear)
def linear_features(module: nn.Linear, ctx: FixupContext) -> None:
    ctx.set(module, "in_features", module.weight.shape[1])
    ctx.set(module, "out_features", module.weight.shape[0])


@register_fixup(nn.modules.conv._ConvNd)
def conv_channels(module: nn.modules.conv._ConvNd, ctx: FixupContext) -> None:
    """Grouped/depthwise convs: the group count follows the grouper's group atom."""
    info = ctx.grouping.prop.convs.get(ctx.path)
    groups = module.groups
    if info is not None and info.group_atom is not None:
        groups = ctx.new_size([info.group_atom])
    ctx.set(module, "groups", groups)
    transposed = getattr(module, "transposed", False)
    inner = module.weight.shape[1] * groups
    ctx.set(module, "in_channels", module.weight.shape[0] if transposed else inner)
    ctx.set(module, "out_channels", inner if transposed else module.weight.shape[0])


@register_fixup(nn.modules.batchnorm._NormBase)
def norm_features(module: nn.Module, ctx: FixupContext) -> None:
    tensor = module.weight if module.weight is not None else module.running_mean
    if tensor is not None:
        ctx.set(module, "num_features", tensor.shape[0])


@register_fixup(nn.GroupNorm)
def group_norm_channels(module: nn.GroupNorm, ctx: FixupContext) -> None:
    if module.weight is not None:
        ctx.set(module, "num_channels", module.weight.shape[0])


@register_fixup(nn.Module)
def normalized_shape(module: nn.Module, ctx: FixupContext) -> None:
    """Any module that owns a layer/RMS norm call and stores its ``normalized_shape`` (nn.LayerNorm,
    timm's LayerNorm2d and RmsNorm, affine-free norms whose shape no tensor slice reveals)."""
    if ctx.norm_dims is None:
        return
    old = tuple(ctx.old_size(d) for d in ctx.norm_dims)
    new = tuple(ctx.new_size(d) for d in ctx.norm_dims)
    shape = getattr(module, "normalized_shape", None)
    if new != old and shape is not None and tuple(shape) == old:
        ctx.set(module, "normalized_shape", new)


@register_fixup(nn.Module)
def attention_widths(module: nn.Module, ctx: FixupContext) -> None:
    """A module that computes attention itself (timm's attention variants and look-alikes): its head
    count and head width follow the grouper's heads and head-dim atoms. The fused path uses
    1/sqrt(head_dim) and the unfused one ``self.scale``, so both are kept in step."""
    info = ctx.attention
    if info is None or isinstance(module, nn.MultiheadAttention):
        return
    heads, head_dim = ctx.new_size(info.heads), ctx.new_size(info.head_dim)
    value_dim = ctx.new_size(info.value_dim) if info.value_dim else head_dim
    old_heads, old_head_dim = ctx.old_size(info.heads), ctx.old_size(info.head_dim)
    old_value_dim = ctx.old_size(info.value_dim) if info.value_dim else old_head_dim
    for attr, dense, value in (
            ("num_heads", old_heads, heads), ("head_dim", old_head_dim, head_dim), ("key_dim", old_head_dim, head_dim),
            ("val_dim", old_value_dim, value_dim), ("attn_dim", old_heads * old_value_dim, heads * value_dim),
            ("key_attn_dim", old_heads * old_head_dim, heads * head_dim),
            ("val_attn_dim", old_heads * old_value_dim, heads * value_dim), ("dh", old_heads * old_value_dim, heads * value_dim),
            # Hugging Face transformers (4.x: attention_head_size/all_head_size; 5.x: head_dim); their
            # ``scaling`` is passed to the kernel explicitly, so it keeps the dense model's value
            ("num_attention_heads", old_heads, heads), ("attention_head_size", old_head_dim, head_dim),
            ("all_head_size", old_heads * old_head_dim, heads * head_dim)):
        old = getattr(module, attr, None)
        # An attribute follows an atom only where it holds that atom's dense size: one that holds another
        # number is not what the trace calls heads/head dims (timm's HaloAttn: heads traced × 2), so it stays.
        if isinstance(old, int) and not isinstance(old, bool) and old == dense:
            ctx.set(module, attr, value)
    scale = getattr(module, "scale", None)
    if isinstance(scale, float) and math.isclose(scale, old_head_dim ** -0.5, rel_tol=1e-6):
        ctx.set(module, "scale", head_dim ** -0.5)


@register_fixup(nn.Module)
def patch_embedding_channels(module: nn.Module, ctx: FixupContext) -> None:
    """transformers' patch embeddings check the input's channels against ``self.num_channels`` (PVT's later
    stages embed the previous stage's output, whose width is pruned): it follows the projection's input."""
    projection = getattr(module, "projection", None)
    channels = getattr(module, "num_channels", None)
    if isinstance(projection, nn.modules.conv._ConvNd) and isinstance(channels, int) and not isinstance(channels, bool):
        ctx.set(module, "num_channels", projection.in_channels)


@register_fixup(nn.MultiheadAttention)
def multihead_attention(module: nn.MultiheadAttention, ctx: FixupContext) -> None:
    """``nn.MultiheadAttention`` derives head_dim = embed_dim // num_heads from its *input* width."""
    if module.in_proj_weight is not None:
        embed = module.in_proj_weight.shape[1]
    else:
        embed = module.q_proj_weight.shape[1]
    ctx.set(module, "embed_dim", embed)
    if ctx.attention is not None:
        ctx.set(module, "num_heads", ctx.new_size(ctx.attention.heads))
        ctx.set(module, "head_dim", ctx.new_size(ctx.attention.head_dim))
    else:
        ctx.set(module, "head_dim", embed // module.num_heads)
    ctx.set(module, "kdim", module.k_proj_weight.shape[1] if module.k_proj_weight is not None else embed)
    ctx.set(module, "vdim", module.v_proj_weight.shape[1] if module.v_proj_weight is not None else embed)


def _register_torchvision() -> None:
    try:
        from torchvision.models.vision_transformer import EncoderBlock, VisionTransformer
    except ImportError:  # torchvision is optional for the grouper
        return

    @register_fixup(VisionTransformer)
    def torchvision_vit(module: VisionTransformer, ctx: FixupContext) -> None:
        # _process_input reshapes the patch embedding with self.hidden_dim.
        ctx.set(module, "hidden_dim", module.conv_proj.out_channels)

    @register_fixup(EncoderBlock)
    def torchvision_encoder_block(module: EncoderBlock, ctx: FixupContext) -> None:
        ctx.set(module, "num_heads", module.self_attention.num_heads)


def _register_timm() -> None:
    try:
        from timm.models.metaformer import Scale
    except ImportError:
        return
    from timm.layers.mixed_conv2d import MixedConv2d

    @register_fixup(MixedConv2d)
    def mixed_conv_splits(module: MixedConv2d, ctx: FixupContext) -> None:
        """MixNet's MixedConv2d splits its input with a stored list (``torch.split(x, self.splits, 1)``):
        each part is one child conv's input, and the children's fix-ups (run first) hold the new widths."""
        convs = list(module.values())
        ctx.set(module, "splits", [int(c.in_channels) for c in convs])
        ctx.set(module, "in_channels", sum(int(c.in_channels) for c in convs))
        ctx.set(module, "out_channels", sum(int(c.out_channels) for c in convs))

    @register_fixup(Scale)
    def metaformer_scale(module: Scale, ctx: FixupContext) -> None:
        # forward does self.scale.view(self.shape): the stored shape leads with the channel count.
        shape = tuple(module.shape)
        ctx.set(module, "shape", (module.scale.shape[0],) + shape[1:])


_register_torchvision()
_register_timm()
