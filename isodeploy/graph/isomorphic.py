"""Topology signatures of groups and their isomorphic classes.

A group's sub-graph is every op that reads or writes its channels. Its signature lists the compute
ops of that sub-graph in graph order, each with what changes its computation (kernel, stride,
grouping, activation and norm kind) and the role the channels play in it (which argument and dim),
plus the wiring between them (layout ops such as view/permute are looked through). Widths and names
are left out, so the MLP hidden groups of twelve identical blocks share one signature.
"""

from __future__ import annotations

import hashlib

from torch import fx

from isodeploy.graph.propagate import Propagation, base_op, shape_of
from isodeploy.graph.walk import role_of

def node_leaf_sets(prop: Propagation) -> dict[fx.Node, tuple[list[set[int]], set[int]]]:
    """For every op node: the leaf atoms of each tensor input, and of its output(s)."""
    cache: dict[fx.Node, set[int]] = {}

    def leaves_of(node: fx.Node) -> set[int]:
        if node not in cache:
            value = prop.dims.get(node)
            dims_lists = value if isinstance(value, tuple) else [value]
            found: set[int] = set()
            for dims in dims_lists:
                for d in dims or []:
                    if d is None:
                        continue
                    found.update(prop.atoms.tree(d).leaves())
            cache[node] = found
        return cache[node]

    out = {}
    for node in prop.traced.graph.nodes:
        if node.op != "call_function":
            continue
        ins = [leaves_of(a) for a in _tensor_inputs(node)]
        out[node] = (ins, leaves_of(node))
    return out


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    found = []
    for arg in list(node.args) + list(node.kwargs.values()):
        for item in arg if isinstance(arg, (list, tuple)) else [arg]:
            if isinstance(item, fx.Node) and shape_of(item.meta.get("val")) is not None:
                found.append(item)
    return found


def _spec(node: fx.Node):
    from isodeploy.graph.ops import TABLE  # noqa: PLC0415

    return TABLE.lookup(node)


def _attrs(node: fx.Node) -> str:
    """What changes an op's computation, without widths (the op table's ``attrs``)."""
    spec = _spec(node)
    return spec.attrs(node) if spec is not None and spec.attrs is not None else ""


def _role(prop: Propagation, node: fx.Node, atom: int) -> str:
    """Which arguments/dims of the op carry the group's channels."""
    parts = []
    for i, arg in enumerate(_tensor_inputs(node)):
        dims = prop.dims_of(arg) or []
        hit = [str(d) for d, factors in enumerate(dims) if atom in prop.atoms.tree(factors).leaves()]
        if hit:
            parts.append(f"a{i}d{'.'.join(hit)}")
    return ",".join(parts)


def group_signature(prop: Propagation, atom: int, node_leaves: dict) -> tuple[str, str]:
    """(full signature, short display signature such as ``linear→gelu→linear``) of one group."""
    touched = [n for n, (ins, out) in node_leaves.items() if atom in out or any(atom in s for s in ins)]
    touched_set = set(touched)
    compute: list[fx.Node] = []
    for node in touched:
        role = role_of(node)
        if role in ("layout", "none"):
            continue
        if role == "binary" and sum(atom in s for s in node_leaves[node][0]) < 2:
            continue
        compute.append(node)
    index = {n: i for i, n in enumerate(compute)}

    def producers(node: fx.Node, seen: set) -> list[int]:
        found: list[int] = []
        for arg in _tensor_inputs(node):
            if arg in seen or arg not in touched_set:
                continue
            seen.add(arg)
            found.extend([index[arg]] if arg in index else producers(arg, seen))
        return found

    tokens = []
    for node in compute:
        preds = sorted(set(producers(node, set())))
        tokens.append(f"{base_op(node)}[{_attrs(node)}]({_role(prop, node, atom)})<{','.join(map(str, preds))}")
    full = "|".join(tokens)
    names: list[str] = []
    for node in compute:
        spec = _spec(node)
        name = (spec.short if spec is not None and spec.short else None) or base_op(node)
        if not names or names[-1] != name:
            names.append(name)
    short = "→".join(names[:8]) + (f"→…({len(compute)} ops)" if len(names) > 8 else "")
    return full, short


def signature_hash(full: str) -> str:
    return hashlib.sha1(full.encode()).hexdigest()[:12]
