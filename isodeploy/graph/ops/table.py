"""The one op table: per ATen op its channel rule, its role in topology signatures, its MAC formula
and what in its arguments changes its computation.

Entries are keyed by the op *overload packet* (``torch.ops.aten.linear``), so ``linear.default`` and
any other overload share one entry; in-place variants (``relu_``) are separate packets and are
registered beside their functional op. Names are accepted for convenience and resolved to packets
at registration time; a name this torch does not have is skipped.

Everything that needs per-op knowledge reads this table: propagation (``rule``), the isomorphic
signature (``role``, ``attrs``), the planner's cost model and ``bench``'s MAC counter (``macs``), so
they cannot disagree. Users extend it with :func:`register_op` (see ``docs/grouper.md``).
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import fx

#: ``shape(arg)`` → the static shape of a tensor argument of a node (or of the node itself).
ShapeOf = Callable[[Any], tuple[int, ...]]
#: ``macs(node, shape)`` → multiply-accumulates of the whole batch.
MacFormula = Callable[[fx.Node, ShapeOf], int]
#: ``rule(prop, node)`` → the output's dims (see :mod:`isodeploy.graph.propagate`).
Rule = Callable[[Any, fx.Node], object]

#: roles, for topology signatures: ``layout`` ops are looked through; ``binary`` ops count only when
#: two operands carry a group's channels; ``weight`` ops own Linear/Conv weights; ``compute`` the rest.
ROLES = ("layout", "binary", "weight", "compute", "none")


@dataclass
class OpSpec:
    """Everything isodeploy knows about one op."""

    key: object
    name: str
    rule: Rule | None = None
    role: str = "compute"
    macs: MacFormula | None = None
    attrs: Callable[[fx.Node], str] | None = None
    short: str | None = None  # display name in signatures ("ln", "conv", "sdpa")

    def count_macs(self, node: fx.Node, shape: "ShapeOf") -> int:
        """The MAC formula's count for ``node``, checked: a user's formula (``register_op(macs=…)``)
        that raises or returns anything but a non-negative integer is one line naming the op."""
        from isodeploy.core.errors import IsodeployError  # noqa: PLC0415

        try:
            value = self.macs(node, shape)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - user code
            raise IsodeployError(f"the MAC formula registered for op '{self.name}' raised {type(exc).__name__}: "
                                 f"{str(exc)[:120]} (node '{node.name}'); fix it (register_op(..., macs=…))") from exc
        if isinstance(value, float) and value.is_integer() and value >= 0:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise IsodeployError(f"the MAC formula registered for op '{self.name}' returned {str(value)[:40]!r} "
                                 f"({type(value).__name__}), not a non-negative integer (node '{node.name}'); fix it "
                                 "(register_op(..., macs=…))")
        return value


class OpTable:
    """Op overload packet → :class:`OpSpec`. Registering a field twice warns (one table, no silent override)."""

    def __init__(self) -> None:
        self._specs: dict[object, OpSpec] = {}

    @staticmethod
    def resolve(op: object) -> object | None:
        """A packet for ``op`` given as a packet, an overload, a callable (``operator.getitem``) or a name."""
        if isinstance(op, str):
            if op == "getitem":
                return operator.getitem
            try:
                return getattr(torch.ops.aten, op)
            except (AttributeError, RuntimeError):
                return None
        return getattr(op, "overloadpacket", op)

    def register(self, ops: Iterable[object] | object, *, replace: bool = False, **fields: Any) -> list[OpSpec]:
        """Set ``fields`` (rule, role, macs, attrs, short) on the entries of ``ops``."""
        if not isinstance(ops, (list, tuple, set, frozenset)):  # an op packet is iterable (its overloads)
            ops = [ops]
        unknown = set(fields) - {"rule", "role", "macs", "attrs", "short"}
        if unknown:
            raise TypeError(f"register_op() got unknown fields {sorted(unknown)}")
        if "role" in fields and fields["role"] not in ROLES:
            raise ValueError(f"role= must be one of {ROLES}; got {fields['role']!r}")
        out = []
        for op in ops:
            key = self.resolve(op)
            if key is None:
                continue
            spec = self._specs.get(key)
            if spec is None:
                spec = self._specs[key] = OpSpec(key=key, name=_name_of(key))
            for field_name, value in fields.items():
                current = getattr(spec, field_name)
                explicit = current is not None and not (field_name == "role" and current == "compute")
                if explicit and not replace:
                    warnings.warn(f"isodeploy: op '{spec.name}' already has a {field_name}; the new one replaces it "
                                  "(pass replace=True to silence this)", stacklevel=3)
                setattr(spec, field_name, value)
            out.append(spec)
        return out

    def lookup(self, node_or_target: object) -> OpSpec | None:
        target = node_or_target.target if isinstance(node_or_target, fx.Node) else node_or_target
        return self._specs.get(getattr(target, "overloadpacket", target))

    def __contains__(self, op: object) -> bool:
        return self.resolve(op) in self._specs

    def specs(self) -> list[OpSpec]:
        return list(self._specs.values())


def _name_of(key: object) -> str:
    name = getattr(key, "__name__", None) or str(key)
    return name.split(".")[-1]


TABLE = OpTable()


def register_op(ops: Iterable[object] | object, *, rule: Rule | None = None, role: str | None = None,
                macs: MacFormula | None = None, attrs: Callable[[fx.Node], str] | None = None,
                short: str | None = None, replace: bool = False) -> list[OpSpec]:
    """Teach isodeploy an op (public API). ``ops``: ``torch.ops.aten.foo``, an overload, or ``"foo"``.

    Give only what you know: a ``rule`` alone makes the op prunable-through, ``macs`` alone makes the
    counters count it. Re-registering a field warns unless ``replace=True``.
    """
    from isodeploy.core.api_args import check_arg  # noqa: PLC0415

    for name, value in (("rule", rule), ("macs", macs), ("attrs", attrs)):
        check_arg(name, value, "callable", optional=True)
    check_arg("short", short, "str", optional=True)
    if role is not None and role not in ROLES:
        from isodeploy.core.errors import ParameterError  # noqa: PLC0415

        raise ParameterError("role", f"must be one of {', '.join(ROLES)}; got {role!r}")
    fields = {k: v for k, v in dict(rule=rule, role=role, macs=macs, attrs=attrs, short=short).items() if v is not None}
    return TABLE.register(ops, replace=replace, **fields)


def rule(*names: str, role: str | None = None, **fields: Any) -> Callable[[Rule], Rule]:
    """Decorator for the built-in rules: ``@rule("relu", "gelu", role="compute")``.

    In-place variants (``relu_``, ``add_``, ``t_``) get the same rule: they return a tensor shaped
    like their functional twin's, which is all a channel rule looks at.
    """

    def decorate(fn: Rule) -> Rule:
        extra = dict(fields)
        if role is not None:
            extra["role"] = role
        TABLE.register(with_inplace(*names), rule=fn, **extra)
        return fn

    return decorate


def with_inplace(*names: str) -> list[str]:
    """``("relu", "add")`` → ``["relu", "relu_", "add", "add_"]``, keeping only ops this torch has."""
    out: list[str] = []
    for name in names:
        out.append(name)
        if not name.endswith("_") and name != "getitem" and OpTable.resolve(f"{name}_") is not None:
            out.append(f"{name}_")
    return out
