"""Pruning the fan-in of a weight standardised in forward (BiT, NF-ResNet, ViT-hybrid stems).

``F.batch_norm(self.weight.reshape(1, out, -1), training=True)`` normalises each filter over its
fan-in in every forward, so cutting input channels changes every kept filter's mean and variance.
Output channels are exact either way (the statistics are per filter). For the fan-in there are two
remedies, chosen per type by :data:`isodeploy.graph.constraints.RESTANDARDISED`:

* ``gain`` (timm's ``ScaledStdConv2d``): fold the variance change into the type's learned gain. The
  module keeps standardising — so a fine-tune trains it as it was designed to be trained — and each
  kept filter is the dense standardised filter on the kept inputs minus its mean there: exact in
  scale, re-centred. The spec records the worst re-centring (``max_filter_recentring``).
* ``bake`` (types without a gain: timm's ``StdConv2d``, transformers' BiT ``WeightStandardizedConv2d``):
  no parameter can carry a per-filter scale, so the dense standardised weight is computed once, sliced
  and stored, and the module's class becomes a ``Baked…`` subclass whose forward convolves with the
  weight as stored. Exact; a fine-tune then trains it as a plain conv. The spec notes
  ``standardisation: baked`` so that a reload re-creates the baked class before loading the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from isodeploy.core.errors import IsodeployError
from isodeploy.graph.constraints import restandardisation
from isodeploy.pruning.fixups import FixupContext, register_fixup

BAKED_NOTE = "standardisation"  # ModuleChange.notes key; the value is "baked"


class BakedStandardisation:
    """Mixin for a standardised conv whose standardisation was applied once, at prune time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = getattr(self, "pad", None)  # transformers' BiT: a DynamicPad2d for "SAME" padding, else None
        if isinstance(pad, nn.Module):
            x = pad(x)
        if getattr(self, "same_pad", False):  # timm's StdConv2dSame
            from timm.layers.padding import pad_same

            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


_BAKED: dict[type, type] = {}


def baked_type(klass: type) -> type:
    """``Baked<klass>``: one per standardised type, kept in this module's namespace so it has a name."""
    if klass not in _BAKED:
        baked = type(f"Baked{klass.__name__}", (BakedStandardisation, klass), {"__module__": __name__})
        baked.__qualname__ = baked.__name__
        globals()[baked.__name__] = baked
        _BAKED[klass] = baked
    return _BAKED[klass]


def bake(module: nn.Module, path: str) -> None:
    """Give ``module`` the baked forward (its weight must already hold the standardised values)."""
    if isinstance(module, BakedStandardisation):
        return
    if restandardisation(module) != "bake" or not isinstance(module, nn.Conv2d):
        raise IsodeployError(f"the spec bakes the weight standardisation of '{path}', a {type(module).__name__}, which has "
                             "none to bake; the spec was edited or the source model changed: re-run 'isodeploy prune'")
    module.__class__ = baked_type(type(module))


def _dense_rows(ctx: FixupContext, name: str, dense: torch.Tensor) -> torch.Tensor:
    """The dense filters (flattened, float64) of the output channels the plan kept, in their new order."""
    rows_tree = ctx.grouping.trees.get((name, 0))
    rows = rows_tree.kept_indices(ctx.keep_by_atom) if rows_tree is not None else list(range(dense.shape[0]))
    return dense.detach().reshape(dense.shape[0], -1)[rows].double()


@register_fixup(nn.Conv2d)
def standardised_fan_in(module: nn.Conv2d, ctx: FixupContext) -> None:
    """A pruned fan-in of a standardised weight: fold the variance into the gain, or bake (module doc)."""
    how = restandardisation(module)
    if how is None or isinstance(module, BakedStandardisation):
        return
    name = f"{ctx.path}.weight" if ctx.path else "weight"
    dense = ctx.before.get(name)
    if dense is None or tuple(dense.shape[1:]) == tuple(module.weight.shape[1:]):
        return  # only output channels cut: exact as it is
    flat_dense = _dense_rows(ctx, name, dense)
    flat_kept = module.weight.detach().reshape(module.weight.shape[0], -1).double()
    with torch.no_grad():
        if how == "bake":
            mean, var = flat_dense.mean(dim=1, keepdim=True), flat_dense.var(dim=1, unbiased=False, keepdim=True)
            baked = (flat_kept - mean) / (var + module.eps).sqrt()
            module.weight.copy_(baked.reshape(module.weight.shape).to(module.weight.dtype))
            bake(module, ctx.path)
            ctx.change.notes[BAKED_NOTE] = "baked"
            return
        var_dense, var_kept = flat_dense.var(dim=1, unbiased=False), flat_kept.var(dim=1, unbiased=False)
        factor = ((var_kept + module.eps) / (var_dense + module.eps)).sqrt()  # L2-optimal: the mean part is orthogonal
        module.gain.mul_(factor.view(-1, 1, 1, 1).to(module.gain.dtype))
        # the one inexactness: |offset| / |dense filter on the kept inputs|, per filter
        shift = (flat_kept.mean(dim=1) - flat_dense.mean(dim=1)).abs()
        recentring = shift / (var_kept + shift ** 2).sqrt().clamp_min(1e-30)
    ctx.change.notes["gain_rescaled_for_fan_in"] = round(module.weight[0].numel() / dense[0].numel(), 6)
    ctx.change.notes["max_filter_recentring"] = round(float(recentring.max()), 6)


def restore_baked(module: nn.Module, path: str, notes: object) -> None:
    """On reload: re-create the baked class a spec's module entry notes (before the weights load)."""
    if not isinstance(notes, dict) or BAKED_NOTE not in notes:
        return
    if notes[BAKED_NOTE] != "baked":
        raise IsodeployError(f"the spec's note {BAKED_NOTE!r} of '{path}' is {str(notes[BAKED_NOTE])[:30]!r}, not 'baked'; "
                             "the spec was edited: re-run 'isodeploy prune'")
    bake(module, path)
