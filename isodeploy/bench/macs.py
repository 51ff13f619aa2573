"""Exact multiply-accumulate counts from the torch.export graph.

Pruning and the benchmark reports quote MACs next to measured latency, so the count must be exact
and shared: we count every matrix-product op in the exported graph from its fake-tensor shapes
(``node.meta['val']``) instead of hooking modules, which misses functional matmuls (attention) and
mis-counts pruned attention. Only multiply-accumulates of products are counted (linear, conv incl.
grouped/transposed, matmul/mm/bmm/addmm/baddbmm/einsum, scaled_dot_product_attention); norms,
activations, softmax and additions are not, the usual convention for "MACs".
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import fx, nn


@dataclass
class MacReport:
    """MACs and parameters of one model, per image."""

    macs: int
    params: int
    #: innermost module path ("blocks.0.attn.qkv", "" for the root) → MACs per image
    per_module: dict[str, int] = field(default_factory=dict)
    #: op name ("linear", "conv2d", "scaled_dot_product_attention", ...) → MACs per image
    by_op: dict[str, int] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def _shape(arg: object) -> tuple[int, ...]:
    """The static shape of an fx argument (a Node carrying a fake tensor)."""
    val = arg.meta.get("val") if isinstance(arg, fx.Node) else None
    if not isinstance(val, torch.Tensor):
        raise ValueError(f"no tensor shape recorded for argument {arg!r}")
    return tuple(int(d) for d in val.shape)


def _out_shape(node: fx.Node) -> tuple[int, ...]:
    return _shape(node)


def _linear(node: fx.Node) -> int:
    # y = x W^T: every output element is a dot product over in_features = W.shape[1].
    return math.prod(_out_shape(node)) * _shape(node.args[1])[1]


def _conv(node: fx.Node) -> int:
    # Weight is (C_out, C_in/groups, *k): each output element sums C_in/groups * prod(k) products.
    return math.prod(_out_shape(node)) * math.prod(_shape(node.args[1])[1:])


def _conv_transpose(node: fx.Node) -> int:
    # Weight is (C_in, C_out/groups, *k): each input element scatters into C_out/groups * prod(k) outputs.
    return math.prod(_shape(node.args[0])) * math.prod(_shape(node.args[1])[1:])


def _convolution(node: fx.Node) -> int:
    transposed = bool(node.args[6]) if len(node.args) > 6 else False
    return _conv_transpose(node) if transposed else _conv(node)


def _product(first_operand: int) -> Callable[[fx.Node], int]:
    """out.numel × K, K being the contracted (last) dim of the left operand."""

    def count(node: fx.Node) -> int:
        return math.prod(_out_shape(node)) * _shape(node.args[first_operand])[-1]

    return count


def _addbmm(node: fx.Node) -> int:
    # addbmm sums a batch of products into one matrix: batch × n × m × k.
    b1 = _shape(node.args[1])
    return b1[0] * b1[1] * b1[2] * _shape(node.args[2])[2]


def _sdpa(node: fx.Node) -> int:
    # softmax(Q K^T) V: Q K^T costs L·S·E and the product with V costs L·S·Ev, per batch × head.
    q, k, v = (_shape(a) for a in node.args[:3])
    lead = math.prod(q[:-2])
    return lead * q[-2] * k[-2] * (q[-1] + v[-1])


def _einsum(node: fx.Node) -> int:
    # A contraction costs the product of every distinct index size (for two operands).
    equation = str(node.args[0]).replace(" ", "")
    inputs = equation.split("->")[0].split(",")
    operands = node.args[1]
    sizes: dict[str, int] = {}
    for subs, operand in zip(inputs, operands):
        shape = _shape(operand)
        letters = [c for c in subs if c.isalpha()]
        if "..." in subs:  # ellipsis dims: name them by position from the right
            n_ell = len(shape) - len(letters)
            pre = subs.split("...")[0]
            letters = [c for c in pre if c.isalpha()] + [f"_{i}" for i in range(n_ell)] + [c for c in subs.split("...")[1] if c.isalpha()]
        for letter, size in zip(letters, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    if len(operands) < 2:
        return 0
    return math.prod(sizes.values())


#: op packet name → MAC counting rule. Extend here when a model uses a new product op.
MAC_RULES: dict[str, Callable[[fx.Node], int]] = {
    "linear": _linear,
    "conv1d": _conv,
    "conv2d": _conv,
    "conv3d": _conv,
    "conv_transpose1d": _conv_transpose,
    "conv_transpose2d": _conv_transpose,
    "conv_transpose3d": _conv_transpose,
    "convolution": _convolution,
    "_convolution": _convolution,
    "matmul": _product(0),
    "mm": _product(0),
    "bmm": _product(0),
    "mv": _product(0),
    "dot": _product(0),
    "addmm": _product(1),
    "baddbmm": _product(1),
    "addmv": _product(1),
    "addbmm": _addbmm,
    "einsum": _einsum,
    "scaled_dot_product_attention": _sdpa,
}


def op_name(target: object) -> str:
    """``aten.linear.default`` → ``linear``; other callables → their ``__name__``."""
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return getattr(packet, "__name__", str(packet)).split(".")[-1]
    return getattr(target, "__name__", str(target))


def count_params(model: nn.Module) -> int:
    """Unique parameters: ``parameters()`` already yields a shared (tied) tensor once."""
    return sum(p.numel() for p in model.parameters())


def count_graph_macs(nodes: Sequence[fx.Node], module_of: Callable[[fx.Node], str]) -> tuple[dict[str, int], dict[str, int]]:
    """Total MACs (whole batch) per module and per op over ``nodes``."""
    per_module: dict[str, int] = defaultdict(int)
    by_op: dict[str, int] = defaultdict(int)
    for node in nodes:
        if node.op != "call_function":
            continue
        name = op_name(node.target)
        rule = MAC_RULES.get(name)
        if rule is None:
            continue
        macs = rule(node)
        per_module[module_of(node)] += macs
        by_op[name] += macs
    return dict(per_module), dict(by_op)


def count_macs(model: nn.Module, example: torch.Tensor) -> MacReport:
    """Count MACs per image of ``model`` on an input shaped like ``example``.

    The example's batch must be ≥ 2 for torch.export; a batch-1 example is repeated to 2. The graph
    is traced once and every count divided by the batch, so figures are per image.
    """
    from isodeploy.graph.trace import trace

    if example.shape[0] < 2:
        example = example.expand(2, *example.shape[1:]).contiguous()
    batch = int(example.shape[0])
    traced = trace(model, example, name=type(model).__name__)
    per_module, by_op = count_graph_macs(list(traced.graph.nodes), traced.module_of)
    total = sum(by_op.values())
    return MacReport(
        macs=round(total / batch),
        params=count_params(model),
        per_module={k: round(v / batch) for k, v in per_module.items()},
        by_op={k: round(v / batch) for k, v in by_op.items()},
        input_shape=tuple(int(d) for d in example.shape[1:]),
    )
