"""The grouper's public entry point: model → traced graph → groups → isomorphic classes.

:func:`analyze` returns a :class:`Grouping` whose ``to_json()`` follows the schema of ``isodeploy
groups --json`` and which keeps the propagation so that pruning can map channels to indices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from isodeploy.core.errors import IsodeployError
from isodeploy.graph.constraints import apply_constraints
from isodeploy.graph.groups import Group, Unprunable, build_groups
from isodeploy.graph.isomorphic import group_signature, node_leaf_sets, signature_hash
from isodeploy.graph.propagate import Propagation
from isodeploy.graph.walk import propagate
from isodeploy.graph.trace import trace


@dataclass
class IsoClass:
    """Groups with the same computational topology: ranked against each other only."""

    id: int
    kind: str
    signature: str  # short, for people
    key: str  # hash of the full signature
    group_ids: list[int] = field(default_factory=list)


@dataclass
class UnsupportedOp:
    op: str
    module: str
    froze: list[str]  # parameter dims that lost prunability because of it


@dataclass
class Grouping:
    model: str
    groups: list[Group]
    classes: list[IsoClass]
    unprunable: list[Unprunable]
    unsupported: list[UnsupportedOp]
    prop: Propagation
    trees: dict  # (tensor name, dim) → Tree: the index structure of every parameter/buffer dim
    seconds: dict[str, float] = field(default_factory=dict)

    def groups_of(self, iso: IsoClass) -> list[Group]:
        return [self.groups[i] for i in iso.group_ids]

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "classes": [
                {
                    "id": c.id,
                    "kind": c.kind,
                    "signature": c.signature,
                    "key": c.key,
                    "groups": [
                        {"id": g.id, "width": g.width, "heads": list(g.heads) if g.heads else None, "params": g.params}
                        for g in self.groups_of(c)
                    ],
                }
                for c in self.classes
            ],
            "unprunable": [{"param": u.param, "reason": u.reason} for u in self.unprunable],
            "unsupported_ops": [{"op": u.op, "module": u.module, "froze": u.froze} for u in self.unsupported],
            "seconds": self.seconds,
        }


def _classify(prop: Propagation, groups: list[Group], node_leaves: dict) -> list[IsoClass]:
    classes: dict[tuple[str, str], IsoClass] = {}
    for group in groups:
        full, short = group_signature(prop, group.atom, node_leaves)
        key = (group.kind, signature_hash(full))
        if key not in classes:
            classes[key] = IsoClass(id=len(classes), kind=group.kind, signature=short, key=key[1])
        classes[key].group_ids.append(group.id)
        group.class_id = classes[key].id
    return list(classes.values())


def _unsupported(prop: Propagation, groups_by_leaf: dict[int, Group], trees) -> list[UnsupportedOp]:
    """Say which op, at which module, froze which parameter dims (never a silent guess)."""
    out: list[UnsupportedOp] = []
    for event in prop.events:
        if not event.unsupported:
            continue
        leaves = {prop.atoms.find(a) for a in prop.atoms.factors(event.atoms)}
        froze = sorted({f"{name}:{d}" for (name, d), tree in trees.items()
                        if name in prop.weight_params and leaves & set(tree.leaves())})
        out.append(UnsupportedOp(op=event.op, module=event.module, froze=froze))
    return out


def analyze(model: nn.Module, example: torch.Tensor, name: str = "model", strict: bool = False,
            rules: dict | None = None, tie_attention: frozenset[str] = frozenset()) -> Grouping:
    """Trace ``model`` on ``example`` and return its groups and isomorphic classes.

    ``strict`` turns any op without a channel rule that froze a weight's channels, and any rule that
    fails its check, into an error. ``rules`` maps ops to extra channel rules for this call only.
    """
    t0 = time.perf_counter()
    traced = trace(model, example, name=name, stack_traces=strict)
    t1 = time.perf_counter()
    prop = propagate(traced, strict=strict, extra_rules=rules)
    apply_constraints(prop, model, tie_attention)
    node_leaves = node_leaf_sets(prop)
    raw = build_groups(prop, node_leaves)
    classes = _classify(prop, raw.groups, node_leaves)
    unsupported = _unsupported(prop, {g.atom: g for g in raw.groups}, raw.trees)
    t2 = time.perf_counter()
    grouping = Grouping(model=name, groups=raw.groups, classes=classes, unprunable=raw.unprunable,
                        unsupported=unsupported, prop=prop, trees=raw.trees, seconds={"export": t1 - t0, "grouping": t2 - t1})
    if strict:
        blocking = [u for u in unsupported if u.froze]
        if blocking:
            first = blocking[0]
            raise IsodeployError(
                f"--strict: op '{first.op}' at '{first.module or 'model'}' has no channel rule and froze "
                f"{len(first.froze)} weight dim(s) (e.g. {first.froze[0]}); drop --strict to prune around it"
            )
    return grouping
