"""Channel rules for ops that move, split, join, reduce or index dims, and for attention.

Registered into the op table (:mod:`isodeploy.graph.ops.table`) on import.
"""

from __future__ import annotations

from torch import fx

from isodeploy.graph.atoms import AlignmentError
from isodeploy.graph.propagate import AttentionInfo, Dims, Propagation, op_name, shape_of
from isodeploy.graph.ops.core import _arg, _norm_dim, _val_shape, unsupported_rule
from isodeploy.graph.ops.table import register_op, rule

SPATIAL = "spatial/token dim"


# -- reshapes --------------------------------------------------------------------------------------
def _reshape_to(prop: Propagation, node: fx.Node, src: fx.Node, out_shape: tuple[int, ...]) -> Dims:
    """Relate input and output dims by a two-pointer walk over factors, splitting where needed."""
    atoms = prop.atoms
    queue = atoms.factors([a for d in prop.dims_of(src) for a in d])
    out: Dims = []
    try:
        for size in out_shape:
            taken, product = [], 1
            while product < size:
                if not queue:
                    raise AlignmentError("ran out of factors")
                factor = atoms.find(queue.pop(0))
                fsize = atoms.size[factor]
                if size % (product * fsize) == 0:
                    taken.append(factor)
                    product *= fsize
                    continue
                need = size // product
                if size % product or fsize % need:
                    raise AlignmentError(f"factor {fsize} straddles an output dim of {size}")
                head, tail = atoms.split_prod(factor, [need, fsize // need])
                taken.append(head)
                queue.insert(0, tail)
                product *= need
            out.append(taken)
        if queue:
            raise AlignmentError("factors left over")
    except AlignmentError as exc:
        prop.freeze(node, prop.dims_of(src), f"{op_name(node)} mixes channel factors ({exc})")
        return prop.fresh(out_shape, frozen=f"{op_name(node)} result with untracked factors")
    return out


@rule("view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze", "unsqueeze", "reshape_as", "view_as",
      "view_copy", "squeeze_copy", "unsqueeze_copy")
def reshape(prop: Propagation, node: fx.Node) -> object:
    return _reshape_to(prop, node, node.args[0], _val_shape(node))


@rule("permute", "permute_copy")
def permute(prop: Propagation, node: fx.Node) -> object:
    dims = prop.dims_of(node.args[0])
    order = [_norm_dim(d, len(dims)) for d in node.args[1]]
    return [dims[d] for d in order]


@rule("transpose", "swapaxes", "t", "numpy_T")
def transpose(prop: Propagation, node: fx.Node) -> object:
    dims = list(prop.dims_of(node.args[0]))
    if len(node.args) < 3:
        return dims[::-1]
    a, b = _norm_dim(node.args[1], len(dims)), _norm_dim(node.args[2], len(dims))
    dims[a], dims[b] = dims[b], dims[a]
    return dims


@rule("expand", "expand_copy", "expand_as", "broadcast_to")
def expand(prop: Propagation, node: fx.Node) -> object:
    """Broadcast dims (1 → n) get fresh atoms; existing dims keep theirs."""
    dims, shape = prop.dims_of(node.args[0]), _val_shape(node.args[0])
    out_shape = _val_shape(node)
    offset = len(out_shape) - len(shape)
    out = prop.fresh(out_shape[:offset])
    for i, size in enumerate(shape):
        out.append(dims[i] if size == out_shape[i + offset] else prop.fresh((out_shape[i + offset],))[0])
    return out


@rule("repeat", "tile", "flip", "roll")
def repeat_like(prop: Propagation, node: fx.Node) -> object:
    """Ops that tile or reorder along dims: those dims lose channel identity; others pass through."""
    dims, shape = prop.dims_of(node.args[0]), _val_shape(node.args[0])
    out_shape = _val_shape(node)
    name = op_name(node)
    if name in ("flip", "roll"):
        axes = node.args[1] if name == "flip" else _arg(node, 2, "dims", ())
        axes = [_norm_dim(a, len(shape)) for a in (axes if isinstance(axes, (list, tuple)) else [axes])]
        if not axes:  # roll without dims flattens first
            prop.freeze(node, dims, f"{name} over all dims")
            return prop.fresh(out_shape, frozen=SPATIAL)
        prop.freeze(node, [dims[a] for a in axes], f"{name} reorders this dim")
        return dims
    if len(out_shape) != len(shape):
        return unsupported_rule(prop, node)
    out = []
    for i, size in enumerate(shape):
        if size == out_shape[i]:
            out.append(dims[i])
        else:
            prop.freeze(node, [dims[i]], f"{name} tiles this dim")
            out.append(prop.fresh((out_shape[i],), frozen=f"{name} tiled dim")[0])
    return out


@rule("pad", "constant_pad_nd", "reflection_pad2d", "replication_pad2d")
def pad(prop: Propagation, node: fx.Node) -> object:
    dims, shape, out_shape = prop.dims_of(node.args[0]), _val_shape(node.args[0]), _val_shape(node)
    out = []
    for i, size in enumerate(shape):
        if size == out_shape[i]:
            out.append(dims[i])
        else:
            prop.freeze(node, [dims[i]], "padded dim")
            out.append(prop.fresh((out_shape[i],), frozen="padded dim")[0])
    return out


# -- reductions and pooling ----------------------------------------------------------------------------
@rule("mean", "sum", "amax", "amin", "var", "std", "linalg_vector_norm", "norm", "prod", "logsumexp", "any", "all")
def reduction(prop: Propagation, node: fx.Node) -> object:
    """Reduced dims vanish (or become size 1); a reduction over channels is a norm-like coupling, not a freeze."""
    dims, shape = prop.dims_of(node.args[0]), _val_shape(node.args[0])
    axes = _arg(node, 1, "dim", None)
    if op_name(node) in ("linalg_vector_norm", "norm"):
        axes = _arg(node, 2, "dim", None)
    if axes is None or (isinstance(axes, (list, tuple)) and len(axes) == 0):
        axes = list(range(len(shape)))
    axes = {_norm_dim(a, len(shape)) for a in (axes if isinstance(axes, (list, tuple)) else [axes])}
    out_shape = _val_shape(node)
    keep = len(out_shape) == len(shape)
    out = []
    for i, d in enumerate(dims):
        if i in axes:
            if keep:
                out.append([])
        else:
            out.append(d)
    return out


@rule("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool1d", "avg_pool2d", "max_pool1d",
      "max_pool2d", "max_pool2d_with_indices", "upsample_nearest2d", "upsample_bilinear2d", "upsample_bicubic2d",
      "_upsample_nearest_exact2d", "_adaptive_avg_pool2d", "lp_pool2d")
def pool(prop: Propagation, node: fx.Node) -> object:
    """Pooling and resizing keep batch and channel dims; spatial dims get fresh frozen atoms."""
    dims = prop.dims_of(node.args[0])
    value = node.meta.get("val")
    first = value[0] if isinstance(value, (list, tuple)) else value
    out_shape = shape_of(first)
    n_spatial = len(out_shape) - 2
    out = dims[:2] + prop.fresh(out_shape[2:], frozen=SPATIAL)
    for d in dims[2:]:
        prop.atoms.freeze(d, SPATIAL)
    if n_spatial < 0:
        return unsupported_rule(prop, node)
    if isinstance(value, (list, tuple)):
        return (out,) + tuple(prop.fresh(shape_of(v), frozen="pooling indices") for v in value[1:])
    return out


# -- joining and splitting -----------------------------------------------------------------------------
@rule("cat", "concat", "concatenate")
def cat(prop: Propagation, node: fx.Node) -> object:
    """Concatenation: the joined dim is a *sum* of the inputs' dims, the other dims are shared."""
    tensors = [t for t in node.args[0] if shape_of(t.meta.get("val")) is not None and prop.dims_of(t) is not None]
    out_shape = _val_shape(node)
    axis = _norm_dim(_arg(node, 1, "dim", 0), len(out_shape))
    tensors = [t for t in tensors if len(_val_shape(t)) == len(out_shape) and _val_shape(t)[axis] > 0]
    out = [list(d) for d in prop.dims_of(tensors[0])]
    for t in tensors[1:]:
        for i, d in enumerate(prop.dims_of(t)):
            if i != axis:
                prop.unify(node, out[i], d)
    sizes = [_val_shape(t)[axis] for t in tensors]
    if len(tensors) == 1:
        return out
    whole, parts = prop.atoms.new_sum(sizes)
    for part, t in zip(parts, tensors):
        prop.unify(node, [part], prop.dims_of(t)[axis])
    out[axis] = [whole]
    return out


@rule("stack")
def stack(prop: Propagation, node: fx.Node) -> object:
    tensors = list(node.args[0])
    out_shape = _val_shape(node)
    axis = _norm_dim(_arg(node, 1, "dim", 0), len(out_shape))
    out = [list(d) for d in prop.dims_of(tensors[0])]
    for t in tensors[1:]:
        for i, d in enumerate(prop.dims_of(t)):
            prop.unify(node, out[i], d)
    out.insert(axis, prop.fresh((out_shape[axis],), frozen="stacked dim")[0])
    return out


@rule("split", "split_with_sizes", "chunk", "tensor_split", "unsafe_split", "split_copy")
def split(prop: Propagation, node: fx.Node) -> object:
    """Splitting a dim into pieces is the inverse of concatenation: a sum split of that dim."""
    dims = prop.dims_of(node.args[0])
    pieces = [shape_of(v) for v in node.meta["val"]]
    axis = _norm_dim(_arg(node, 2, "dim", 0), len(dims))
    sizes = [p[axis] for p in pieces]
    if len(sizes) == 1:
        return (dims,)
    whole, parts = prop.atoms.new_sum(sizes)
    if not prop.unify(node, [whole], dims[axis]):
        return tuple(prop.fresh(p, frozen="split of an untracked dim") for p in pieces)
    return tuple(dims[:axis] + [[part]] + dims[axis + 1:] for part in parts)


@rule("unbind")
def unbind(prop: Propagation, node: fx.Node) -> object:
    """unbind selects by index (e.g. q/k/v out of qkv): that dim's atoms keep their identity (frozen)."""
    dims = prop.dims_of(node.args[0])
    axis = _norm_dim(_arg(node, 1, "dim", 0), len(dims))
    prop.freeze(node, [dims[axis]], f"indexed by unbind at {prop.traced.module_of(node) or 'the model'}")
    rest = dims[:axis] + dims[axis + 1:]
    return tuple(rest for _ in node.meta["val"])


@rule("select", "select_copy")
def select(prop: Propagation, node: fx.Node) -> object:
    dims = prop.dims_of(node.args[0])
    axis = _norm_dim(node.args[1], len(dims))
    prop.freeze(node, [dims[axis]], f"indexed by select at {prop.traced.module_of(node) or 'the model'}")
    return dims[:axis] + dims[axis + 1:]


@rule("slice", "narrow", "slice_copy")
def slice_(prop: Propagation, node: fx.Node) -> object:
    dims, shape, out_shape = prop.dims_of(node.args[0]), _val_shape(node.args[0]), _val_shape(node)
    axis = _norm_dim(_arg(node, 1, "dim", 0), len(dims))
    if shape[axis] == out_shape[axis]:
        return dims
    prop.freeze(node, [dims[axis]], f"sliced at {prop.traced.module_of(node) or 'the model'}")
    return dims[:axis] + prop.fresh((out_shape[axis],), frozen="slice of a dim") + dims[axis + 1:]


@rule("index", "_unsafe_index")
def index(prop: Propagation, node: fx.Node) -> object:
    """Advanced indexing by constant index tensors (relative-position tables, LeViT attention biases).

    Indexed dims are frozen; the dims before and after pass through, so a table's heads dim still
    follows its heads group.
    """
    dims = prop.dims_of(node.args[0])
    indices = list(node.args[1])
    used = [i for i, ix in enumerate(indices) if ix is not None]
    if not used or used != list(range(used[0], used[-1] + 1)):
        return unsupported_rule(prop, node)
    prop.freeze(node, [dims[i] for i in used], f"indexed by a constant index tensor at {prop.traced.module_of(node) or 'the model'}")
    out_shape = _val_shape(node)
    n_before, n_after = used[0], len(dims) - used[-1] - 1
    middle = out_shape[n_before: len(out_shape) - n_after]
    return dims[:n_before] + prop.fresh(middle, frozen="index result") + dims[used[-1] + 1:]


@rule("getitem")
def getitem(prop: Propagation, node: fx.Node) -> object:
    source = prop.dims.get(node.args[0])
    if isinstance(source, tuple):
        return source[node.args[1]]
    return _fresh_like_getitem(prop, node)


def _fresh_like_getitem(prop: Propagation, node: fx.Node) -> object:
    shape = shape_of(node.meta.get("val"))
    return prop.fresh(shape, frozen="untracked tuple element") if shape is not None else None


# -- products ------------------------------------------------------------------------------------------
def _broadcast_batch(prop: Propagation, node: fx.Node, dims_list: list[Dims], out_batch: tuple[int, ...]) -> Dims:
    out: Dims = [[] for _ in out_batch]
    seen = [False] * len(out_batch)
    for dims in dims_list:
        offset = len(out_batch) - len(dims)
        for i, d in enumerate(dims):
            j = i + offset
            size = 1
            for a in prop.atoms.factors(d):
                size *= prop.atoms.size[a]
            if size == 1 or size != out_batch[j]:
                continue
            if not seen[j]:
                out[j], seen[j] = d, True
            else:
                prop.unify(node, out[j], d)
    for j, size in enumerate(out_batch):
        if size != 1 and not seen[j]:
            out[j] = [prop.atoms.new(size)]
    return out


@rule("matmul", "bmm", "mm")
def matmul(prop: Propagation, node: fx.Node) -> object:
    a, b = prop.dims_of(node.args[0]), prop.dims_of(node.args[1])
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return unsupported_rule(prop, node)
    prop.unify(node, a[-1], b[-2])
    out_shape = _val_shape(node)
    batch = _broadcast_batch(prop, node, [a[:-2], b[:-2]], out_shape[:-2])
    if len(out_shape) == 4:  # unfused attention: (B, heads, L, E) @ (B, heads, E, S), then @ (B, heads, S, Ev)
        prop.atoms.tag(batch[1], "heads")
        module = prop.traced.module_of(node)
        info = prop.attention.get(module)
        if info is None:
            prop.atoms.tag(a[-1], "head_dim")
            prop.attention[module] = AttentionInfo(module=module, heads=batch[1], head_dim=a[-1], value_dim=[])
        elif not info.value_dim:
            prop.atoms.tag(b[-1], "head_dim")
            info.value_dim = b[-1]
    return batch + [a[-2], b[-1]]


@rule("scaled_dot_product_attention")
def sdpa(prop: Propagation, node: fx.Node) -> object:
    """q (.., L, E), k (.., S, E), v (.., S, Ev): E couples q with k, S couples k with v; heads are dim -3."""
    q, k, v = (prop.dims_of(a) for a in node.args[:3])
    prop.unify(node, q[-1], k[-1])
    prop.unify(node, k[-2], v[-2])
    out_shape = _val_shape(node)
    batch = _broadcast_batch(prop, node, [q[:-2], k[:-2], v[:-2]], out_shape[:-2])
    mask = _arg(node, 3, "attn_mask")
    mask_dims = prop.dims_of(mask)
    if mask_dims is not None:
        full = batch + [q[-2], k[-2]]
        shape = _val_shape(mask)
        offset = len(full) - len(shape)
        for i, size in enumerate(shape):
            if size != 1:
                prop.unify(node, full[i + offset], mask_dims[i])
    if len(batch) >= 2:
        heads = batch[-1]  # (B, heads, L, E); with more batch dims the constraints pick (graph/constraints.py)
        prop.atoms.tag(heads, "heads")
        prop.atoms.tag(q[-1], "head_dim")
        prop.atoms.tag(v[-1], "head_dim")
        module = prop.traced.module_of(node)
        prop.attention[module] = AttentionInfo(module=module, heads=heads, head_dim=q[-1], value_dim=v[-1], batch_dims=batch[1:])
    return batch + [q[-2], v[-1]]




# Ops that only move data around: signatures look through them (they never change a group's topology).
register_op(("view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose",
             "t", "expand", "expand_as", "getitem", "roll", "pad", "constant_pad_nd", "reshape_as", "view_as", "swapaxes",
             "view_copy", "permute_copy", "expand_copy", "squeeze_", "unsqueeze_", "transpose_", "t_"), role="layout")
