"""Freezing what a node touches: the fallback for an op without a rule, and for a rule that fails its
check (:mod:`isodeploy.graph.checked`). Below the op table, so the checker needs no rule module.
"""

from __future__ import annotations

from torch import fx

from isodeploy.graph.propagate import Propagation, op_name, shape_of


def unsupported_rule(prop: Propagation, node: fx.Node) -> object:
    """No rule: freeze every input dim and give the outputs fresh frozen atoms."""
    return freeze_node(prop, node, f"no channel rule for op '{op_name(node)}'")


def freeze_node(prop: Propagation, node: fx.Node, reason: str) -> object:
    """Freeze every dim ``node`` reads (reported as unsupported) and give its outputs fresh frozen atoms."""
    for arg in _tensor_args(node):
        dims = prop.dims_of(arg)
        if dims:
            prop.freeze(node, dims, reason, unsupported=True)
    return _fresh_like(prop, node.meta.get("val"), frozen=reason)


def _fresh_like(prop: Propagation, value: object, frozen: str | None = None) -> object:
    shape = shape_of(value)
    if shape is not None:
        return prop.fresh(shape, frozen=frozen)
    if isinstance(value, (list, tuple)):
        return tuple(_fresh_like(prop, v, frozen) for v in value)
    return None


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    out = []
    for arg in list(node.args) + list(node.kwargs.values()):
        items = arg if isinstance(arg, (list, tuple)) else [arg]
        out.extend(a for a in items if isinstance(a, fx.Node) and shape_of(a.meta.get("val")) is not None)
    return out
