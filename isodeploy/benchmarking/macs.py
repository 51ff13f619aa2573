"""Exact multiply-accumulate counts from the torch.export graph.

Pruning and the benchmark reports quote MACs next to measured latency, so the count must be exact
and shared: we count every matrix-product op in the exported graph from its fake-tensor shapes
(``node.meta['val']``) instead of hooking modules, which misses functional matmuls (attention) and
mis-counts pruned attention. Only multiply-accumulates of products are counted (linear, conv incl.
grouped/transposed, matmul/mm/bmm/addmm/baddbmm/einsum, scaled_dot_product_attention); norms,
activations, softmax and additions are not, the usual convention for "MACs". The formulas live in the
op table (:mod:`isodeploy.graph.ops.macs`), shared with the planner's cost model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import fx, nn

from isodeploy.graph.ops import TABLE


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


def traced_shape(arg: object) -> tuple[int, ...]:
    """The static shape of an fx argument (a Node carrying a fake tensor)."""
    val = arg.meta.get("val") if isinstance(arg, fx.Node) else None
    if not isinstance(val, torch.Tensor):
        raise ValueError(f"no tensor shape recorded for argument {arg!r}")
    return tuple(int(d) for d in val.shape)


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
        spec = TABLE.lookup(node)
        if spec is None or spec.macs is None:
            continue
        name = op_name(node.target)
        macs = spec.count_macs(node, traced_shape)  # a user's formula is checked (one line naming the op)
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
