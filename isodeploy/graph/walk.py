"""Walk a traced graph through the op table: every node's rule, checked against its traced shape.

Above :mod:`isodeploy.graph.propagate` (the state a walk fills in) and :mod:`isodeploy.graph.ops`
(the rules, which import that state), so the rules and the walk never import each other.
"""

from __future__ import annotations

from typing import Any

from torch import fx

from isodeploy.graph.atoms import AtomTable
from isodeploy.graph.checked import run_rule
from isodeploy.graph.ops import TABLE, OpTable
from isodeploy.graph.propagate import Propagation, shape_of
from isodeploy.graph.trace import TracedGraph


def role_of(node: fx.Node) -> str:
    """The op's role in topology signatures, from the op table (``compute`` when unknown)."""
    spec = TABLE.lookup(node)
    return spec.role if spec is not None else "compute"


def propagate(traced: TracedGraph, strict: bool = False, extra_rules: dict | None = None) -> Propagation:
    """Run every node through its rule; unknown ops freeze what they touch and are reported.

    Every rule's result is checked against the node's traced shape (:mod:`isodeploy.graph.checked`):
    a rule that raises or disagrees freezes what the node touches with that reason, or under
    ``strict`` raises one :class:`~isodeploy.graph.checked.RuleError` naming node, op, module and line.
    ``extra_rules`` maps ops (packets, overloads or names) to rules used for this call only.
    """
    overrides = {OpTable.resolve(k): v for k, v in (extra_rules or {}).items()}
    prop = Propagation(traced=traced, atoms=AtomTable())
    user_inputs = set(traced.user_inputs)
    for node in traced.graph.nodes:
        value = node.meta.get("val")
        if node.op == "placeholder":
            shape = shape_of(value)
            if shape is None:
                continue
            if node.name in traced.state_of:
                name = traced.state_of[node.name]
                prop.dims[node] = prop.fresh(shape)
                prop.state_dims[name] = prop.dims[node]
                prop.state_of_node[node] = name
            elif node.name in user_inputs:
                prop.dims[node] = prop.fresh(shape, frozen="model input (image channels, batch and spatial dims)")
            else:  # tensors captured as constants: nothing can slice them, so their dims keep identity
                prop.dims[node] = prop.fresh(shape, frozen="a constant tensor held by the model (not a parameter or buffer)")
        elif node.op == "call_function":
            target = getattr(node.target, "overloadpacket", node.target)
            spec = TABLE.lookup(node)
            rule = overrides.get(target) or (spec.rule if spec is not None else None)
            result = run_rule(prop, node, rule, strict)
            if result is not None:
                prop.dims[node] = result
        elif node.op == "output":
            for out in _flatten(node.args[0]):
                dims = prop.dims_of(out)
                if dims:
                    prop.freeze(node, dims, "model output (e.g. the classifier's classes)")
    return prop


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    return [value]
