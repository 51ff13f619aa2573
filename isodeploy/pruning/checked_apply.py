"""A self-verifying apply: slice, fix up, then prove the pruned copy runs and matches the plan.

A static trace cannot see widths the model's *code* derives (``reshape(B, N, C)`` with ``C`` read
from ``x.shape[-1]``, ``C // self.num_heads``, a stored ``self.shape``). So after slicing, the copy
is checked: every weight has the planned shape, the forward runs, the output keeps its shape, and a
re-trace shows every activation with the planned shape. When a check fails, the classes responsible
are found (each tried alone, then added one by one), frozen with the reason (module, source line,
error), the rest re-planned, and the check repeated. The result always runs and matches its plan;
under ``strict`` a needed freeze is an error instead.
"""

from __future__ import annotations

import copy
import os
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from isodeploy.core.errors import IsodeployError
from isodeploy.graph.analysis import Grouping
from isodeploy.pruning.apply import apply_keep
from isodeploy.pruning.fixups import ModuleChange
from isodeploy.pruning.plan import PrunePlan

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


@dataclass
class Failure:
    """Why a pruned copy is not right: the check, the module and source line, the error."""

    check: str  # "apply" | "weights" | "forward" | "output" | "retrace"
    error: str
    module: str = ""
    line: str = ""

    def describe(self) -> str:
        where = " at ".join(x for x in (self.module and f"'{self.module}'", self.line) if x)
        return f"{self.check} failed{' at ' + where if where else ''}: {self.error}"


@dataclass
class FrozenClass:
    """A class the self-check found unsafe to prune, kept at full width."""

    class_id: int
    kind: str
    signature: str
    reason: str
    module: str = ""
    line: str = ""


@dataclass
class CheckedApply:
    model: nn.Module
    plan: PrunePlan
    changes: list[ModuleChange]
    frozen: list[FrozenClass]
    attempts: int
    seconds: float
    retraced: bool


def _keep_by_atom(grouping: Grouping, keep: dict[int, list[int]]) -> dict[int, list[int]]:
    return {grouping.groups[g].atom: idx for g, idx in keep.items() if len(idx) < grouping.groups[g].width}


def _blame(model: nn.Module, exc: BaseException) -> tuple[str, str]:
    """(module path, ``file.py:line``) of the innermost frame outside torch itself."""
    paths = {id(m): name for name, m in model.named_modules()}
    module, line = "", ""
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith(_TORCH_DIR) or "/isodeploy/" in filename:
            continue
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in paths:
            module = paths[id(owner)] or "(root)"
        line = f"{os.path.basename(filename)}:{lineno}"
    return module, line


def check_weights(model: nn.Module, grouping: Grouping, keep_by_atom: dict[int, list[int]]) -> Failure | None:
    """Every parameter/buffer dim has the planned size (a tied tensor: the plan of any of its names)."""
    from isodeploy.pruning.apply import tied_aliases

    tensors = dict(model.named_parameters(remove_duplicate=False)) | dict(model.named_buffers(remove_duplicate=False))
    aliases = tied_aliases(model)
    expected = {key: tree.size_after(keep_by_atom) for key, tree in grouping.trees.items()}
    for (name, dim), size in expected.items():
        tensor = tensors.get(name)
        if tensor is None or tensor.dim() <= dim or tensor.shape[dim] == size:
            continue
        if any(expected.get((alias, dim)) == tensor.shape[dim] for alias in aliases.get(name, [])):
            continue
        return Failure("weights", f"{name} has {tensor.shape[dim]} in dim {dim}, the plan says {size}",
                       module=name.rpartition(".")[0])
    return None


def check_forward(model: nn.Module, example: torch.Tensor, expected_shape: tuple[int, ...] | None) -> Failure | None:
    try:
        with torch.no_grad():
            out = model(example)
    except Exception as exc:  # the model's own code rejects the new widths
        module, line = _blame(model, exc)
        first = (str(exc).strip().splitlines() or [""])[0]
        return Failure("forward", f"{type(exc).__name__}: {first[:200]}", module, line)
    if isinstance(out, torch.Tensor) and expected_shape is not None and tuple(out.shape) != expected_shape:
        return Failure("output", f"output shape {tuple(out.shape)} differs from the dense model's {expected_shape}")
    if isinstance(out, torch.Tensor) and not torch.isfinite(out).all():
        return Failure("output", "the pruned model's output holds NaN or inf")
    return None


def check_retrace(model: nn.Module, grouping: Grouping, keep_by_atom: dict[int, list[int]], example: torch.Tensor) -> Failure | None:
    """Re-trace the pruned copy; every activation present in both traces has its planned shape."""
    from isodeploy.graph.propagate import shape_of
    from isodeploy.graph.trace import trace

    try:
        traced = trace(model, example, name="pruned model")
    except IsodeployError as exc:
        return Failure("retrace", str(exc))
    widths = {atom: len(idx) for atom, idx in keep_by_atom.items()}
    prop = grouping.prop
    planned = _by_place(prop.traced)
    for place, nodes in _by_place(traced).items():
        old_nodes = planned.get(place, [])
        if len(old_nodes) != len(nodes):  # the module took another code path: nothing to pair
            continue
        for node, old in zip(nodes, old_nodes):
            dims = prop.dims_of(old)
            actual = shape_of(node.meta.get("val"))
            if dims is None or actual is None or len(dims) != len(actual):
                continue
            expected = tuple(prop.atoms.tree(d).size_with(widths) for d in dims)
            if expected != actual:
                return Failure("retrace", f"activation '{node.name}' ({place[1]}) is {list(actual)}, the plan says {list(expected)}",
                               module=place[0])
    return None


def _by_place(traced) -> dict[tuple[str, str], list]:
    """Op nodes bucketed by (module path, op), in graph order: how two traces of one model pair up."""
    from isodeploy.graph.propagate import op_name

    out: dict[tuple[str, str], list] = {}
    for node in traced.graph.nodes:
        if node.op == "call_function":
            out.setdefault((traced.module_of(node), op_name(node)), []).append(node)
    return out


class _Checker:
    """Applies a plan (or part of one) to fresh copies of the dense model and checks the result."""

    def __init__(self, dense: nn.Module, grouping: Grouping, example: torch.Tensor, output_shape: list[int] | None) -> None:
        self.dense, self.grouping, self.example = dense, grouping, example
        self.out_shape = (int(example.shape[0]), *output_shape) if output_shape is not None else None
        self.attempts = 0

    def attempt(self, keep: dict[int, list[int]], retrace: bool) -> tuple[nn.Module | None, list[ModuleChange], Failure | None]:
        self.attempts += 1
        model = copy.deepcopy(self.dense)
        try:
            changes = apply_keep(model, self.grouping, keep)
        except Exception as exc:  # a fix-up or slice met a module it does not understand
            module, line = _blame(model, exc)
            return None, [], Failure("apply", f"{type(exc).__name__}: {str(exc)[:200]}", module, line)
        model.eval()
        by_atom = _keep_by_atom(self.grouping, keep)
        failure = check_weights(model, self.grouping, by_atom) or check_forward(model, self.example, self.out_shape)
        if failure is None and retrace:
            failure = check_retrace(model, self.grouping, by_atom, self.example)
        return model, changes, failure


def _pruned_classes(grouping: Grouping, plan: PrunePlan) -> list[int]:
    return [c.id for c in grouping.classes if any(g in plan.keep for g in c.group_ids)]


def _restrict(grouping: Grouping, plan: PrunePlan, class_ids: list[int]) -> dict[int, list[int]]:
    groups = {g for c in class_ids for g in grouping.classes[c].group_ids}
    return {g: idx for g, idx in plan.keep.items() if g in groups}


def _culprits(checker: _Checker, grouping: Grouping, plan: PrunePlan) -> dict[int, Failure]:
    """Classes whose pruning breaks the model: each alone first, then (for interactions) one by one."""
    classes = _pruned_classes(grouping, plan)
    found: dict[int, Failure] = {}
    for cid in classes:
        _, _, failure = checker.attempt(_restrict(grouping, plan, [cid]), retrace=False)
        if failure is not None:
            found[cid] = failure
    if found:
        return found
    accepted: list[int] = []
    for cid in classes:
        _, _, failure = checker.attempt(_restrict(grouping, plan, accepted + [cid]), retrace=False)
        if failure is None:
            accepted.append(cid)
        else:
            found[cid] = failure
    return found


def apply_checked(dense: nn.Module, grouping: Grouping, example: torch.Tensor, plan: PrunePlan,
                  replan: Callable[[set[int]], PrunePlan], strict: bool = False, retrace: bool = True,
                  say: Callable[[str], None] = lambda _m: None, max_rounds: int = 4,
                  output_shape: list[int] | None = None) -> CheckedApply:
    """Apply ``plan`` to a copy of ``dense``; freeze and re-plan classes until the copy checks out.

    ``output_shape``: the dense model's output shape per sample (measured here when not given).
    """
    t0 = time.perf_counter()
    if output_shape is None:
        with torch.no_grad():
            out = dense(example)
        output_shape = list(out.shape[1:]) if isinstance(out, torch.Tensor) else None
    checker = _Checker(dense, grouping, example, output_shape)
    frozen: list[FrozenClass] = []
    frozen_groups: set[int] = set()
    for _ in range(max_rounds):
        model, changes, failure = checker.attempt(plan.keep, retrace=retrace)
        if failure is None:
            return CheckedApply(model, plan, changes, frozen, checker.attempts, time.perf_counter() - t0, retrace)
        say(f"self-check: {failure.describe()}; finding the classes responsible")
        culprits = _culprits(checker, grouping, plan) or {c: failure for c in _pruned_classes(grouping, plan)}
        if strict:
            cid, why = next(iter(culprits.items()))
            iso = grouping.classes[cid]
            raise IsodeployError(f"--strict: pruning class {cid} ({iso.kind}, {iso.signature}) breaks the model: "
                                 f"{why.describe()}; drop --strict to freeze it and prune the rest")
        for cid, why in culprits.items():
            iso = grouping.classes[cid]
            frozen.append(FrozenClass(cid, iso.kind, iso.signature, why.describe(), why.module, why.line))
            frozen_groups.update(iso.group_ids)
        plan = replan(frozen_groups)
    # Out of rounds: the dense widths always run.
    for iso in grouping.classes:
        if not set(iso.group_ids) <= frozen_groups:
            frozen.append(FrozenClass(iso.id, iso.kind, iso.signature, "the self-check kept failing; kept dense"))
            frozen_groups.update(iso.group_ids)
    plan = replan(frozen_groups)
    model, changes, failure = checker.attempt(plan.keep, retrace=False)
    if failure is not None or model is None:
        # Never write an unpruned copy as if it were pruned: the dense model itself fails the self-check
        raise IsodeployError(f"the unpruned model itself fails the self-check ({failure and failure.describe()}); "
                             "check the model and its weights (NaN/inf?)")
    return CheckedApply(model, plan, changes, frozen, checker.attempts, time.perf_counter() - t0, False)
