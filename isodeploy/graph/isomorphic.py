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

# Ops that only move data around: they are looked through when wiring, never listed.
LAYOUT_OPS = {
    "view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose", "t",
    "expand", "expand_as", "contiguous", "clone", "alias", "detach", "dropout", "native_dropout", "to", "_to_copy",
    "getitem", "roll", "pad", "constant_pad_nd", "reshape_as", "view_as", "type_as", "swapaxes", "view_copy",
    "permute_copy", "expand_copy", "lift_fresh_copy", "_assert_tensor_metadata",
}
# Elementwise ops with two tensor operands: part of a group's topology only when both carry it.
BINARY_OPS = {"add", "sub", "rsub", "mul", "div", "where", "maximum", "minimum", "masked_fill"}
SHORT_NAMES = {"scaled_dot_product_attention": "sdpa", "conv2d": "conv", "conv1d": "conv", "convolution": "conv",
               "batch_norm": "bn", "_native_batch_norm_legit_no_training": "bn", "layer_norm": "ln",
               "group_norm": "gn", "adaptive_avg_pool2d": "pool", "avg_pool2d": "pool", "max_pool2d": "maxpool"}


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


def _attrs(node: fx.Node) -> str:
    """What changes an op's computation, without widths."""
    op = base_op(node)
    if op in ("conv1d", "conv2d", "conv3d", "convolution"):
        weight = shape_of(node.args[1].meta.get("val"))
        groups = int(node.args[8] if op == "convolution" else (node.args[6] if len(node.args) > 6 else 1))
        stride = tuple(node.args[3]) if len(node.args) > 3 else (1,)
        dilation = tuple(node.args[5]) if len(node.args) > 5 else (1,)
        in_channels = shape_of(node.args[0].meta.get("val"))[1]
        grouping = "dw" if groups > 1 and groups == in_channels else ("g" if groups > 1 else "")
        return f"k{'x'.join(map(str, weight[2:]))}s{'x'.join(map(str, stride))}d{'x'.join(map(str, dilation))}{grouping}"
    if op in ("max_pool2d", "avg_pool2d"):
        return f"k{node.args[1]}s{node.args[2] if len(node.args) > 2 else ''}"
    if op == "gelu":
        return str(node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none"))
    return ""


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
        op = base_op(node)
        if op in LAYOUT_OPS:
            continue
        if op in BINARY_OPS and sum(atom in s for s in node_leaves[node][0]) < 2:
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
        name = SHORT_NAMES.get(base_op(node), base_op(node))
        if not names or names[-1] != name:
            names.append(name)
    short = "→".join(names[:8]) + (f"→…({len(compute)} ops)" if len(names) > 8 else "")
    return full, short


def signature_hash(full: str) -> str:
    return hashlib.sha1(full.encode()).hexdigest()[:12]
