"""Channel rules of pointwise ops, constructors and the layers with weights (linear, conv, norms).

A rule reads its inputs' dims (product lists of atoms), couples what the op couples, and returns the
output's dims; it is registered into the one op table (:mod:`isodeploy.graph.ops.table`). An op
without a rule goes to :func:`unsupported_rule`, which freezes every dim it touches and reports it:
a missing rule must never become a silent guess (``docs/grouper.md``).
"""

from __future__ import annotations

from torch import fx

from isodeploy.graph.ops.table import register_op, rule
from isodeploy.graph.freeze import _fresh_like, _tensor_args, freeze_node, unsupported_rule  # noqa: F401 - shape.py imports them from here
from isodeploy.graph.propagate import ConvInfo, Dims, Propagation, op_name, shape_of


def _val_shape(node: fx.Node) -> tuple[int, ...]:
    shape = shape_of(node.meta.get("val"))
    if shape is None:
        raise TypeError(f"{node} has no tensor value")
    return shape


def _arg(node: fx.Node, index: int, name: str, default: object = None) -> object:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


# -- fallbacks ------------------------------------------------------------------------------------
@rule("_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range_for_size", "_assert_async", role="none")
def no_output(prop: Propagation, node: fx.Node) -> object:
    return None


@rule("zeros", "ones", "full", "empty", "arange", "scalar_tensor", "zeros_like", "ones_like", "full_like",
      "empty_like", "new_zeros", "new_ones", "new_full", "new_empty", "rand", "randn", "rand_like", "randn_like",
      "lift_fresh_copy", "eye", "linspace", "tensor")
def constructor(prop: Propagation, node: fx.Node) -> object:
    """New tensors carry no channels of their inputs (a mask, an index); their atoms are fresh."""
    return _fresh_like(prop, node.meta.get("val"))


# -- pointwise ---------------------------------------------------------------------------------------
@rule("clone", "contiguous", "alias", "detach", "dropout", "to", "_to_copy", "type_as", "lift", "_to_dim_order_copy",
      "feature_dropout", "alpha_dropout", role="layout")
def identity(prop: Propagation, node: fx.Node) -> object:
    """Same dims as the first tensor argument (``type_as`` only borrows the other's dtype)."""
    return prop.dims_of(node.args[0])


@rule("native_dropout", role="layout")
def native_dropout(prop: Propagation, node: fx.Node) -> object:
    dims = prop.dims_of(node.args[0])
    return (dims, dims)


@rule("relu", "relu6", "gelu", "silu", "sigmoid", "hardswish", "hardsigmoid", "hardtanh", "tanh", "elu", "selu",
      "leaky_relu", "mish", "softplus", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "erf", "reciprocal", "sign",
      "square", "clamp", "clamp_min", "clamp_max", "softmax", "_softmax", "log_softmax", "_log_softmax", "add", "sub",
      "rsub", "mul", "div", "pow", "where", "maximum", "minimum", "masked_fill", "eq", "ne", "lt", "le", "gt", "ge",
      "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or", "floor", "ceil", "round", "trunc",
      "cos", "sin", "atan2", "fmod", "remainder", "lerp", "addcmul", "addcdiv", "nan_to_num", "erfinv", "log1p",
      "expm1", "sigmoid_backward", "copy", "fill")
def pointwise(prop: Propagation, node: fx.Node) -> object:
    """Broadcasting elementwise ops: dims of equal, non-1 size aligned from the right are one set."""
    out_shape = _val_shape(node)
    ndim = len(out_shape)
    out: Dims = [[] for _ in out_shape]
    seen = [False] * ndim
    for arg in _tensor_args(node):
        dims, shape = prop.dims_of(arg), shape_of(arg.meta.get("val"))
        if dims is None or shape is None:
            continue
        offset = ndim - len(shape)
        for i, size in enumerate(shape):
            j = i + offset
            if size == 1 or j < 0 or size != out_shape[j]:
                continue
            if not seen[j]:
                out[j], seen[j] = dims[i], True
            else:
                prop.unify(node, out[j], dims[i])
    for j, size in enumerate(out_shape):
        if size != 1 and not seen[j]:
            out[j] = [prop.atoms.new(size)]
    return out


# -- layers with weights -------------------------------------------------------------------------------
@rule("linear", role="weight")
def linear(prop: Propagation, node: fx.Node) -> object:
    x, weight, bias = node.args[0], node.args[1], _arg(node, 2, "bias")
    xd, wd = prop.dims_of(x), prop.dims_of(weight)
    prop.unify(node, xd[-1], wd[1])
    if bias is not None:
        prop.unify(node, prop.dims_of(bias)[0], wd[0])
    if weight in prop.state_of_node:
        prop.weight_params.add(prop.state_of_node[weight])
    return xd[:-1] + [wd[0]]


@rule("conv1d", "conv2d", "conv3d", "convolution", role="weight")
def conv(prop: Propagation, node: fx.Node) -> object:
    """Conv couples in-channels with weight dim 1 and out-channels with dim 0, per group.

    With ``groups`` g > 1 the channels factor as (g, per-group): the g atom is shared by input,
    weight and output, so pruning whole groups updates ``conv.groups`` and per-group widths stay free.
    """
    x, weight = node.args[0], node.args[1]
    bias = _arg(node, 2, "bias")
    if op_name(node) == "convolution":
        if _arg(node, 6, "transposed", False):
            return unsupported_rule(prop, node)
        groups = int(_arg(node, 8, "groups", 1))
    else:
        groups = int(_arg(node, 6, "groups", 1))
    xd, wd = prop.dims_of(x), prop.dims_of(weight)
    out_shape = _val_shape(node)
    w_shape = _val_shape(weight)
    cout, cin_per_group = w_shape[0], w_shape[1]
    group_atom = None
    if groups == 1:
        prop.unify(node, xd[1], wd[1])
        out_channels = wd[0]
    else:
        group_atom = prop.atoms.new(groups)
        in_per, out_per = prop.fresh((cin_per_group,)), prop.fresh((cout // groups,))
        prop.unify(node, xd[1], [group_atom] + in_per[0])
        prop.unify(node, wd[1], in_per[0])
        prop.unify(node, wd[0], [group_atom] + out_per[0])
        out_channels = [group_atom] + out_per[0]
    if bias is not None:
        prop.unify(node, prop.dims_of(bias)[0], out_channels)
    name = prop.state_of_node.get(weight) or _computed_weight(prop, node, weight)
    module = name.rsplit(".", 1)[0] if name else None
    owned = bool(name) and name in prop.traced.parameters and prop.traced.module_of(node) == module
    if group_atom is not None and not owned:
        # A functional grouped conv (timm's BlurPool: F.conv2d(x, self.filt, groups=self.channels)):
        # nothing would update the module's own group count, so the groups must keep their number.
        prop.atoms.freeze([group_atom], f"group count of a functional grouped conv at {prop.traced.module_of(node) or 'the model'}")
    if name:
        prop.weight_params.add(name)
        prop.convs[module] = ConvInfo(weight=name, groups=groups, group_atom=group_atom if owned else None)
    for d in wd[2:]:
        prop.atoms.freeze(d, "conv kernel dim")
    spatial = prop.fresh(out_shape[2:], frozen="spatial dim")
    for d in xd[2:]:
        prop.atoms.freeze(d, "spatial dim")
    return [xd[0], out_channels] + spatial


#: most nodes a weight computation may span (StdConv2d: 5); beyond it the walk stops
_WEIGHT_GRAPH_LIMIT = 64


def _state_only_ancestors(prop: Propagation, node: fx.Node) -> list[str] | None:
    """The parameters/buffers ``node`` is computed from, or None when it also depends on a model input
    (an activation, not a weight)."""
    seen, stack, names = set(), [node], []
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if len(seen) > _WEIGHT_GRAPH_LIMIT:  # a weight is computed in a few ops; this is an activation's history
            return None
        if cur.op == "placeholder":
            if cur not in prop.state_of_node:
                return None
            names.append(prop.state_of_node[cur])
        stack.extend(cur.all_input_nodes)
    return names


def _computed_weight(prop: Propagation, node: fx.Node, weight: object) -> str | None:
    """A conv weight computed in forward from the conv module's own parameters only (timm's
    StdConv2d/ScaledStdConv2d standardise ``self.weight``): the parameter of the same shape is the
    weight. Its dims reached the conv through the computation's own rules (reshape, batch_norm), so
    slicing the parameter slices the computed weight."""
    if not isinstance(weight, fx.Node):
        return None
    names = _state_only_ancestors(prop, weight)
    module = prop.traced.module_of(node)
    shape = shape_of(weight.meta.get("val"))
    for n in names or []:
        if n.rsplit(".", 1)[0] == module and n in prop.traced.parameters and prop.state_dims.get(n) is not None \
                and len(prop.state_dims[n]) == len(shape or ()) and tuple(prop.atoms.tree(d).size for d in prop.state_dims[n]) == shape:
            return n
    return None


def _training_mode(node: fx.Node) -> bool:
    """Whether a batch_norm computes its statistics from its input (instead of running stats)."""
    name = op_name(node)
    if name in ("_batch_norm_with_update", "instance_norm"):
        return True
    if name in ("batch_norm", "_native_batch_norm_legit", "native_batch_norm"):
        return bool(_arg(node, 5, "training", False))
    return False


def _unify_channel_params(prop: Propagation, node: fx.Node, channel: list[int], params: list[object]) -> None:
    for param in params:
        dims = prop.dims_of(param)
        if dims:
            prop.unify(node, channel, dims[0])


@rule("batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "native_batch_norm",
      "instance_norm", "_batch_norm_with_update", "_batch_norm_no_update")
def batch_norm(prop: Propagation, node: fx.Node) -> object:
    xd = prop.dims_of(node.args[0])
    _unify_channel_params(prop, node, xd[1], list(node.args[1:5]))
    if _training_mode(node) and isinstance(node.args[0], fx.Node) and _state_only_ancestors(prop, node.args[0]):
        # Statistics over a weight (weight standardisation): every dim but 1 is reduced over, and
        # pruning it changes the statistics; the constraints decide whether it may be pruned
        prop.standardised.setdefault(prop.traced.module_of(node), []).extend(d for i, d in enumerate(xd) if i != 1)
    value = node.meta.get("val")
    if isinstance(value, (list, tuple)):
        return (xd,) + tuple(_fresh_like(prop, v) for v in value[1:])
    return xd


@rule("layer_norm", "native_layer_norm", "rms_norm", "_fused_rms_norm")
def layer_norm(prop: Propagation, node: fx.Node) -> object:
    xd = prop.dims_of(node.args[0])
    normalized = list(node.args[1])
    prop.norms[prop.traced.module_of(node)] = xd[len(xd) - len(normalized):]
    params = [a for a in node.args[2:4] if isinstance(a, fx.Node)]
    for param in params:
        pd = prop.dims_of(param)
        for k in range(1, len(normalized) + 1):
            prop.unify(node, xd[-k], pd[-k])
    value = node.meta.get("val")
    if isinstance(value, (list, tuple)):
        return (xd,) + tuple(_fresh_like(prop, v) for v in value[1:])
    return xd


@rule("group_norm", "native_group_norm")
def group_norm(prop: Propagation, node: fx.Node) -> object:
    """GroupNorm: channels factor as (groups, per-group); the group count is frozen, per-group width is free."""
    xd = prop.dims_of(node.args[0])
    if op_name(node) == "group_norm":
        groups, params = int(node.args[1]), [a for a in node.args[2:4] if isinstance(a, fx.Node)]
    else:
        groups, params = int(node.args[6]), [a for a in node.args[1:3] if isinstance(a, fx.Node)]
    channels = _val_shape(node.args[0])[1]
    if groups > 1:
        group_atom = prop.atoms.new(groups, frozen="GroupNorm group count")
        per = prop.fresh((channels // groups,))[0]
        prop.unify(node, xd[1], [group_atom] + per)
    _unify_channel_params(prop, node, xd[1], params)
    value = node.meta.get("val")
    if isinstance(value, (list, tuple)):
        return (xd,) + tuple(_fresh_like(prop, v) for v in value[1:])
    return xd


# -- what changes an op's computation, and how signatures name it --------------------------------------
def conv_attrs(node: fx.Node) -> str:
    """Kernel, stride, dilation and grouping (depthwise or grouped), without widths."""
    weight = _val_shape(node.args[1])
    groups = int(_arg(node, 8, "groups", 1) if op_name(node) == "convolution" else _arg(node, 6, "groups", 1))
    stride = tuple(_arg(node, 3, "stride", (1,)))
    dilation = tuple(_arg(node, 5, "dilation", (1,)))
    in_channels = _val_shape(node.args[0])[1]
    grouping = "dw" if groups > 1 and groups == in_channels else ("g" if groups > 1 else "")
    return f"k{'x'.join(map(str, weight[2:]))}s{'x'.join(map(str, stride))}d{'x'.join(map(str, dilation))}{grouping}"


def pool_attrs(node: fx.Node) -> str:
    return f"k{_arg(node, 1, 'kernel_size', '')}s{_arg(node, 2, 'stride', '')}"


def gelu_attrs(node: fx.Node) -> str:
    return str(node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none"))


register_op(("conv1d", "conv2d", "conv3d", "convolution"), attrs=conv_attrs, short="conv")
register_op(("max_pool2d", "avg_pool2d"), attrs=pool_attrs)
register_op(("gelu", "gelu_"), attrs=gelu_attrs)
for _names, _short in ((("batch_norm", "_native_batch_norm_legit_no_training"), "bn"), (("layer_norm",), "ln"),
                       (("group_norm",), "gn"), (("adaptive_avg_pool2d", "avg_pool2d"), "pool"), (("max_pool2d",), "maxpool"),
                       (("scaled_dot_product_attention",), "sdpa")):
    register_op(_names, short=_short)

# Elementwise ops with two tensor operands: part of a group's topology only when both carry it.
register_op(("add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "where", "maximum", "minimum",
             "masked_fill", "masked_fill_"), role="binary")
register_op("lift_fresh_copy", role="layout")
