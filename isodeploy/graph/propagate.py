"""Walk the exported graph once and apply the per-op channel rules (``rules.py``) to every node.

The result, :class:`Propagation`, holds for every node the factor lists of its output dims, for every
parameter/buffer its dims, and the record of what was frozen and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx

from isodeploy.graph.atoms import AlignmentError, AtomTable
from isodeploy.graph.trace import TracedGraph

Dims = list[list[int]]  # one product list of atoms per tensor dim


@dataclass
class FreezeEvent:
    """An op froze some channel dims: which op, at which module, why."""

    op: str
    module: str
    reason: str
    atoms: list[int]
    unsupported: bool


@dataclass
class ConvInfo:
    """What pruning must know to update a conv's ``groups`` after slicing."""

    weight: str
    groups: int
    group_atom: int | None  # the atom that counts groups, when groups > 1


@dataclass
class AttentionInfo:
    """Heads and head-dim atoms of one attention op, keyed by its module path."""

    module: str
    heads: list[int]
    head_dim: list[int]
    value_dim: list[int]
    batch_dims: list[list[int]] = field(default_factory=list)  # every batch dim after the first (heads is one of them)


@dataclass
class Propagation:
    traced: TracedGraph
    atoms: AtomTable
    dims: dict[fx.Node, Any] = field(default_factory=dict)
    state_dims: dict[str, Dims] = field(default_factory=dict)  # "blocks.0.fc1.weight" → dims
    weight_params: set[str] = field(default_factory=set)  # params used as Linear/Conv weights
    events: list[FreezeEvent] = field(default_factory=list)
    convs: dict[str, ConvInfo] = field(default_factory=dict)  # module path → conv info
    attention: dict[str, AttentionInfo] = field(default_factory=dict)
    #: module path → factor lists of the dims a layer/RMS norm normalises over (its ``normalized_shape``),
    #: kept even for norms without affine parameters, whose shape no tensor slice would reveal
    norms: dict[str, list[list[int]]] = field(default_factory=dict)
    state_of_node: dict[fx.Node, str] = field(default_factory=dict)
    #: module path → the dims a weight standardisation (a training-mode batch_norm over a tensor computed
    #: from parameters only: timm's StdConv2d/ScaledStdConv2d) reduces over — the weight's fan-in.
    #: Pruning them re-standardises every kept weight: a constraint freezes them unless the module's
    #: type has a fix-up that compensates (:data:`isodeploy.graph.constraints.RESTANDARDISED`)
    standardised: dict[str, list[list[int]]] = field(default_factory=dict)

    # -- helpers used by the rules ---------------------------------------------------------------
    def dims_of(self, arg: Any) -> Dims | None:
        if isinstance(arg, fx.Node):
            value = self.dims.get(arg)
            if isinstance(value, list) and (not value or isinstance(value[0], list)):
                return value
        return None

    def fresh(self, shape: tuple[int, ...] | torch.Size, frozen: str | None = None) -> Dims:
        return [[self.atoms.new(s, frozen=frozen)] if s != 1 else [] for s in shape]

    def freeze(self, node: fx.Node, dims: list[list[int]], reason: str, unsupported: bool = False) -> None:
        atoms = [a for d in dims for a in d]
        if not atoms:
            return
        self.atoms.freeze(atoms, reason)
        self.events.append(FreezeEvent(op=op_name(node), module=self.traced.module_of(node), reason=reason, atoms=atoms, unsupported=unsupported))

    def unify(self, node: fx.Node, xs: list[int], ys: list[int]) -> bool:
        """Couple two dims; if they can't be aligned, freeze both (never guess) and report it."""
        try:
            self.atoms.unify(xs, ys)
            return True
        except AlignmentError as exc:
            self.freeze(node, [xs, ys], f"{op_name(node)} couples dims that can't be aligned ({exc})")
            return False


def op_name(node: fx.Node) -> str:
    """A short, overload-free op name: ``aten.relu_.default`` → ``relu_``; getitem → ``getitem``."""
    target = node.target
    if isinstance(target, str):
        return target
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return getattr(packet, "__name__", str(packet)).split(".")[-1]
    return getattr(target, "__name__", str(target))


def base_op(node: fx.Node) -> str:
    """Op name without the in-place suffix: ``relu_`` and ``relu`` share a rule."""
    name = op_name(node)
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def shape_of(value: Any) -> tuple[int, ...] | None:
    """The traced tensor's sizes; None for a non-tensor or a tensor whose size depends on the data
    (``torch.nonzero``, boolean masks): such a tensor carries no channel atoms at all."""
    if isinstance(value, torch.Tensor) and not data_dependent(value):
        return tuple(int(s) for s in value.shape)
    return None


def data_dependent(value: Any) -> bool:
    """Whether a traced value (a tensor, or a tuple of them) has a size known only at run time
    (an unbacked symbol: reading it as an int raises ``GuardOnDataDependentSymNode``)."""
    if isinstance(value, (list, tuple)):
        return any(data_dependent(v) for v in value)
    if not isinstance(value, torch.Tensor):
        return False
    from torch.fx.experimental.symbolic_shapes import has_free_unbacked_symbols  # noqa: PLC0415

    return any(isinstance(s, torch.SymInt) and has_free_unbacked_symbols(s) for s in value.shape)
