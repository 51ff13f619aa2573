"""From propagated atoms to pruning *groups*: one leaf atom that reaches a Linear/Conv weight.

A group lists every (parameter or buffer, dim) whose index structure contains its atom, with the
structure (:class:`~isodeploy.graph.atoms.Tree`) that maps the group's channels to that dim's indices.
Whatever could not become a group is reported in ``unprunable`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from isodeploy.graph.atoms import Tree
from isodeploy.graph.propagate import Propagation

KINDS = ("embedding", "hidden", "heads", "head_dim")


@dataclass
class Member:
    """One tensor dim touched by a group; ``tree`` maps group channels to the dim's indices."""

    tensor: str
    dim: int
    tree: Tree
    is_param: bool

    @property
    def label(self) -> str:
        return f"{self.tensor}:{self.dim}"


@dataclass
class Group:
    id: int
    atom: int
    width: int
    kind: str
    members: list[Member]
    heads: tuple[int, int] | None = None
    class_id: int = -1

    @property
    def params(self) -> list[str]:
        return [m.label for m in self.members if m.is_param]


@dataclass
class Unprunable:
    param: str
    reason: str


@dataclass
class RawGroups:
    groups: list[Group]
    unprunable: list[Unprunable]
    trees: dict[tuple[str, int], Tree] = field(default_factory=dict)


def _is_kernel_dim(prop: Propagation, name: str, dim: int) -> bool:
    module = name.rsplit(".", 1)[0]
    return dim >= 2 and module in prop.convs and prop.convs[module].weight == name


def _is_residual(prop: Propagation, atom: int, node_leaves: dict) -> bool:
    """A residual stream: an ``add`` joining two branches that carry the atom *and were produced by
    different Linear/Conv ops* (x + proj(…)). An add inside one branch (ConvNeXt-V2's GRN computes
    x + f(x) from the same fc1 output) or of a constant/parameter (a bias, a position table) is not.
    """
    from isodeploy.graph.propagate import base_op
    from isodeploy.graph.walk import role_of

    memo: dict = {}

    def producers(node) -> frozenset:
        if node in memo:
            return memo[node]
        memo[node] = frozenset()  # guards against revisiting while walking
        entry = node_leaves.get(node)
        if entry is None or atom not in entry[1]:
            result = frozenset()
        elif role_of(node) == "weight":
            result = frozenset([node])
        else:
            result = frozenset().union(*[producers(a) for a in _tensor_inputs(node)]) if _tensor_inputs(node) else frozenset()
        memo[node] = result
        return result

    for node, (ins, _out) in node_leaves.items():
        if base_op(node) != "add" or sum(atom in leaves for leaves in ins) < 2:
            continue
        branches = [producers(a) for a in _tensor_inputs(node) if node_leaves.get(a) and atom in node_leaves[a][1]]
        branches = [b for b in branches if b]
        if len(branches) >= 2 and len(set(branches)) >= 2:
            return True
    return False


def _tensor_inputs(node) -> list:
    from isodeploy.graph.isomorphic import _tensor_inputs as inputs

    return inputs(node)


def build_groups(prop: Propagation, node_leaves: dict) -> RawGroups:
    """Collect groups and unprunable dims from a finished propagation."""
    atoms = prop.atoms
    trees: dict[tuple[str, int], Tree] = {}
    members: dict[int, list[Member]] = {}
    for name, dims in prop.state_dims.items():
        is_param = name in prop.traced.parameters
        for d, factors in enumerate(dims):
            tree = atoms.tree(factors)
            trees[(name, d)] = tree
            for leaf in set(tree.leaves()):
                if atoms.size[leaf] > 1:
                    members.setdefault(leaf, []).append(Member(name, d, tree, is_param))
    groups: list[Group] = []
    for leaf, mems in members.items():
        if atoms.frozen_reason(leaf) is not None:
            continue
        if not any(m.tensor in prop.weight_params for m in mems):
            continue
        tags = atoms.tags_of(leaf)
        if "heads" in tags:
            kind = "heads"
        elif "head_dim" in tags:
            kind = "head_dim"
        elif _is_residual(prop, leaf, node_leaves):
            kind = "embedding"
        else:
            kind = "hidden"
        groups.append(Group(id=-1, atom=leaf, width=atoms.size[leaf], kind=kind, members=mems))
    # Order groups by where they first appear among the parameters (network order).
    order = {name: i for i, name in enumerate(prop.state_dims)}
    groups.sort(key=lambda g: min(order[m.tensor] for m in g.members))
    for i, group in enumerate(groups):
        group.id = i
    _attach_head_structure(prop, groups)
    grouped = {g.atom for g in groups}
    return RawGroups(groups=groups, unprunable=_unprunable(prop, trees, grouped), trees=trees)


def _attach_head_structure(prop: Propagation, groups: list[Group]) -> None:
    """Give heads and head-dim groups their (H, D) from the attention op that tagged them."""
    by_atom = {g.atom: g for g in groups}
    find = prop.atoms.find
    for info in prop.attention.values():
        heads = [find(a) for a in prop.atoms.factors(info.heads)]
        dims = [find(a) for a in prop.atoms.factors(info.head_dim)]
        if len(heads) != 1 or len(dims) != 1:
            continue
        structure = (prop.atoms.size[heads[0]], prop.atoms.size[dims[0]])
        for atom in heads + dims + [find(a) for a in prop.atoms.factors(info.value_dim)]:
            if atom in by_atom:
                by_atom[atom].heads = structure


def _unprunable(prop: Propagation, trees: dict[tuple[str, int], Tree], grouped: set[int]) -> list[Unprunable]:
    atoms = prop.atoms
    out: list[Unprunable] = []
    for (name, d), tree in trees.items():
        if name not in prop.traced.parameters or tree.size <= 1 or _is_kernel_dim(prop, name, d):
            continue
        reasons: list[str] = []
        leaves = tree.leaves()
        for leaf in leaves:
            if leaf in grouped or atoms.size[leaf] <= 1:
                continue
            reason = atoms.frozen_reason(leaf) or "reaches no Linear/Conv weight"
            if len(leaves) > 1:
                reason = f"factor {atoms.size[leaf]} of {tree.size}: {reason}"
            if reason not in reasons:
                reasons.append(reason)
        if reasons:
            out.append(Unprunable(param=f"{name}:{d}", reason="; ".join(reasons)))
    return out
