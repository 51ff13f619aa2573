"""MACs and parameters of a model *as it would be* after pruning, straight from the traced graph.

Evaluating a plan this way takes milliseconds (no re-tracing), which is what lets ``--target-macs``
search ratios. The counts are exact for linear, conv (grouped too), matmul and attention and agree
with :func:`isodeploy.bench.macs.count_macs` on the pruned model (tested).
"""

from __future__ import annotations

from torch import fx

from isodeploy.graph.analysis import Grouping
from isodeploy.graph.propagate import base_op, shape_of


def _size(grouping: Grouping, factors: list[int], widths: dict[int, int]) -> int:
    return grouping.prop.atoms.tree(factors).size_with(widths)


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def node_macs(grouping: Grouping, node: fx.Node, widths: dict[int, int]) -> int:
    """Multiply-accumulates of one op for the whole example batch."""
    prop = grouping.prop
    op = base_op(node)
    dims = lambda arg: prop.dims_of(arg) or []  # noqa: E731
    size = lambda d: _size(grouping, d, widths)  # noqa: E731
    if op == "linear":
        x, w = dims(node.args[0]), dims(node.args[1])
        return _prod(size(d) for d in x) * size(w[0])
    if op in ("conv1d", "conv2d", "conv3d", "convolution"):
        out, w = prop.dims.get(node), dims(node.args[1])
        out_positions = _prod(size(d) for i, d in enumerate(out) if i != 1)
        return out_positions * _prod(size(d) for d in w)
    if op in ("matmul", "bmm", "mm"):
        a, b = dims(node.args[0]), dims(node.args[1])
        out = prop.dims.get(node)
        return _prod(size(d) for d in out) * size(a[-1])
    if op == "scaled_dot_product_attention":
        q, k, v = (dims(a) for a in node.args[:3])
        batch = _prod(size(d) for d in q[:-2])
        return batch * size(q[-2]) * size(k[-2]) * (size(q[-1]) + size(v[-1]))
    return 0


def plan_cost(grouping: Grouping, widths: dict[int, int] | None = None) -> tuple[int, int]:
    """(MACs per image, parameters) of the model with leaf atom widths replaced by ``widths``."""
    widths = widths or {}
    batch = 1
    for node in grouping.prop.traced.graph.nodes:
        if node.op == "placeholder" and node.name in grouping.prop.traced.user_inputs:
            batch = shape_of(node.meta["val"])[0]
    macs = sum(node_macs(grouping, n, widths) for n in grouping.prop.traced.graph.nodes if n.op == "call_function")
    params = 0
    for name, dims in grouping.prop.state_dims.items():
        if name in grouping.prop.traced.parameters:
            params += _prod(_size(grouping, d, widths) for d in dims)
    return macs // batch, params
