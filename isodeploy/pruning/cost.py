"""MACs and parameters of a model *as it would be* after pruning, straight from the traced graph.

Evaluating a plan this way takes milliseconds (no re-tracing), which is what lets ``--target-macs``
search ratios. The counts are exact for linear, conv (grouped too), matmul and attention and agree
with :func:`isodeploy.benchmarking.macs.count_macs` on the pruned model: both evaluate the op table's one
MAC formula per op, this one on atom widths, that one on traced shapes (tested).
"""

from __future__ import annotations

from isodeploy.graph.analysis import Grouping
from isodeploy.graph.ops import TABLE
from isodeploy.graph.propagate import shape_of


def shape_with(grouping: Grouping, widths: dict[int, int]):
    """A shape accessor for the op table's MAC formulas: traced dims with pruned widths substituted."""
    prop = grouping.prop
    tree = prop.atoms.tree

    def shape(arg) -> tuple[int, ...]:
        dims = prop.dims_of(arg)
        if dims is None:  # no channel dims recorded (a frozen or untracked value): its traced shape
            return shape_of(arg.meta.get("val")) or ()
        return tuple(tree(d).size_with(widths) for d in dims)

    return shape


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def plan_cost(grouping: Grouping, widths: dict[int, int] | None = None) -> tuple[int, int]:
    """(MACs per image, parameters) of the model with leaf atom widths replaced by ``widths``."""
    widths = widths or {}
    prop = grouping.prop
    batch = 1
    for node in prop.traced.graph.nodes:
        if node.op == "placeholder" and node.name in prop.traced.user_inputs:
            batch = shape_of(node.meta["val"])[0]
    shape = shape_with(grouping, widths)
    macs = 0
    for node in prop.traced.graph.nodes:
        spec = TABLE.lookup(node) if node.op == "call_function" else None
        if spec is not None and spec.macs is not None:
            macs += spec.count_macs(node, shape)
    params = 0
    for name, dims in prop.state_dims.items():
        if name in prop.traced.parameters:
            params += _prod(prop.atoms.tree(d).size_with(widths) for d in dims)
    return macs // batch, params
