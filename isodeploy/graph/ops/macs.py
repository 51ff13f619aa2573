"""MAC formulas of the product ops, written against a ``shape`` accessor.

The same formula serves two callers: ``bench``'s counter reads shapes from the traced fake tensors,
the planner's cost model reads them from the grouper's atoms with pruned widths substituted. One
formula, so the planner's "MACs after" is exactly what ``bench`` counts on the pruned model.
Only multiply-accumulates of products count (linear, conv incl. grouped/transposed, matmul family,
einsum, attention); norms, activations, softmax and additions do not — the usual convention.
"""

from __future__ import annotations

import math

from torch import fx

from isodeploy.graph.ops.table import ShapeOf, register_op


def linear(node: fx.Node, shape: ShapeOf) -> int:
    # y = x W^T: every output element is a dot product over in_features = W.shape[1].
    return math.prod(shape(node)) * shape(node.args[1])[1]


def conv(node: fx.Node, shape: ShapeOf) -> int:
    # Weight (C_out, C_in/groups, *k): each output element sums C_in/groups · prod(k) products.
    return math.prod(shape(node)) * math.prod(shape(node.args[1])[1:])


def conv_transpose(node: fx.Node, shape: ShapeOf) -> int:
    # Weight (C_in, C_out/groups, *k): each input element scatters into C_out/groups · prod(k) outputs.
    return math.prod(shape(node.args[0])) * math.prod(shape(node.args[1])[1:])


def convolution(node: fx.Node, shape: ShapeOf) -> int:
    transposed = bool(node.args[6]) if len(node.args) > 6 else bool(node.kwargs.get("transposed", False))
    return conv_transpose(node, shape) if transposed else conv(node, shape)


def product(first_operand: int):
    """out.numel × K, K being the contracted (last) dim of the left operand."""

    def count(node: fx.Node, shape: ShapeOf) -> int:
        return math.prod(shape(node)) * shape(node.args[first_operand])[-1]

    return count


def addbmm(node: fx.Node, shape: ShapeOf) -> int:
    # addbmm sums a batch of products into one matrix: batch × n × m × k.
    b1 = shape(node.args[1])
    return b1[0] * b1[1] * b1[2] * shape(node.args[2])[2]


def sdpa(node: fx.Node, shape: ShapeOf) -> int:
    # softmax(Q Kᵀ) V: Q Kᵀ costs L·S·E and the product with V costs L·S·Ev, per batch × head.
    q, k, v = (shape(a) for a in node.args[:3])
    return math.prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def einsum(node: fx.Node, shape: ShapeOf) -> int:
    # A two-operand contraction costs the product of every distinct index size.
    equation = str(node.args[0]).replace(" ", "")
    inputs = equation.split("->")[0].split(",")
    operands = list(node.args[1])
    if len(operands) < 2:
        return 0
    sizes: dict[str, int] = {}
    for subs, operand in zip(inputs, operands):
        dims = shape(operand)
        letters = [c for c in subs if c.isalpha()]
        if "..." in subs:  # ellipsis dims: name them by position
            pre, post = subs.split("...", 1)
            n_ell = len(dims) - len(letters)
            letters = [c for c in pre if c.isalpha()] + [f"_{i}" for i in range(n_ell)] + [c for c in post if c.isalpha()]
        for letter, size in zip(letters, dims):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return math.prod(sizes.values())


register_op("linear", macs=linear)
register_op(("conv1d", "conv2d", "conv3d"), macs=conv)
register_op(("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"), macs=conv_transpose)
register_op(("convolution", "_convolution"), macs=convolution)
register_op(("matmul", "mm", "bmm", "mv", "dot"), macs=product(0))
register_op(("addmm", "baddbmm", "addmv"), macs=product(1))
register_op("addbmm", macs=addbmm)
register_op("einsum", macs=einsum)
register_op("scaled_dot_product_attention", macs=sdpa)
