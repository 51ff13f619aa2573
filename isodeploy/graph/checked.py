"""Run a channel rule and check its result against what the trace recorded.

A rule is code and code has bugs; a model is arbitrary and reaches corners no rule author saw.
So every rule's output is checked: one factor list per traced dim, whose sizes multiply to the
traced size. A rule that raises, or returns dims that disagree with the trace, never becomes a bare
``IndexError`` deep in pruning: it freezes every dim the node touches with the reason (and the
node, op, module and source line), or under ``strict`` raises one :class:`RuleError`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import fx

from isodeploy.core.errors import IsodeployError
from isodeploy.graph.propagate import Propagation, op_name, shape_of


class RuleError(IsodeployError):
    """A channel rule failed on a node (under ``strict``), or an op has no rule and froze weights."""


def where(prop: Propagation, node: fx.Node) -> str:
    """``node 'linear_3' (aten.linear) at blocks.0.attn.qkv [Linear], file.py:12`` — for one-line errors."""
    module = prop.traced.module_of(node) or "the model"
    kind = prop.traced.module_type_of(node)
    text = f"node '{node.name}' (op {op_name(node)}) at {module}" + (f" [{kind}]" if kind else "")
    line = source_line(node)
    return f"{text}, {line}" if line else text


def source_line(node: fx.Node) -> str:
    """The last user-code frame of the node's stack trace, when the trace kept one."""
    trace = node.meta.get("stack_trace") or ""
    frames = [ln.strip() for ln in trace.splitlines() if ln.strip().startswith("File ")]
    if not frames:
        return ""
    last = frames[-1]  # File "/path/x.py", line 12, in forward
    try:
        path = last.split('"')[1].rsplit("/", 1)[-1]
        lineno = last.split("line ")[1].split(",")[0]
        return f"{path}:{lineno}"
    except IndexError:
        return last


def _dims_size(prop: Propagation, dims: list[int]) -> int:
    return prop.atoms.tree(dims).size


def mismatch(prop: Propagation, result: Any, value: Any) -> str | None:
    """Why ``result`` (a rule's dims) does not describe ``value`` (the traced output), or None."""
    if isinstance(value, torch.Tensor):
        if not isinstance(result, list):
            return f"returned {type(result).__name__} for a tensor output"
        shape = shape_of(value)
        if len(result) != len(shape):
            return f"returned {len(result)} dims for a {len(shape)}-d output {list(shape)}"
        for i, (dims, size) in enumerate(zip(result, shape)):
            if not isinstance(dims, list):
                return f"dim {i} is {type(dims).__name__}, not a factor list"
            got = _dims_size(prop, dims)
            if got != size:
                return f"dim {i} has factors of size {got}, the trace says {size}"
        return None
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        if not isinstance(result, tuple) or len(result) != len(value):
            return f"returned {type(result).__name__} for a {len(value)}-tuple output"
        for i, (r, v) in enumerate(zip(result, value)):
            if isinstance(v, torch.Tensor):
                why = mismatch(prop, r, v)
                if why:
                    return f"output {i}: {why}"
        return None
    return None


def _data_dependent_tensor(node: fx.Node) -> str | None:
    """Which tensor of ``node`` (its output or an input) has a data-dependent size, or None."""
    from isodeploy.graph.propagate import data_dependent  # noqa: PLC0415

    if data_dependent(node.meta.get("val")):
        return "its output"
    for arg in list(node.args) + list(node.kwargs.values()):
        for item in arg if isinstance(arg, (list, tuple)) else [arg]:
            if isinstance(item, fx.Node) and data_dependent(item.meta.get("val")):
                return f"its input '{item.name}'"
    return None


def run_rule(prop: Propagation, node: fx.Node, rule: Callable | None, strict: bool) -> Any:
    """Apply ``rule`` (None: no rule) to ``node`` with the checks above; returns the output dims."""
    from isodeploy.graph.freeze import freeze_node, unsupported_rule  # noqa: PLC0415

    if rule is None:
        return unsupported_rule(prop, node)
    value = node.meta.get("val")
    dependent = _data_dependent_tensor(node)
    if dependent is not None:  # no rule can relate channels across a size known only at run time
        return freeze_node(prop, node, f"{dependent} has a data-dependent size (torch.nonzero, a boolean mask…), "
                                       f"so channels never cross it ({where(prop, node)})")
    try:
        result = rule(prop, node)
        why = mismatch(prop, result, value)
    except Exception as exc:  # a rule bug or an op form the rule did not foresee
        why = f"raised {type(exc).__name__}: {str(exc)[:160]}"
    if why is None:
        return result
    reason = f"channel rule of '{op_name(node)}' {why}"
    if strict:
        raise RuleError(f"--strict: {reason} at {where(prop, node)}; fix or register the rule (docs/grouper.md), "
                        "or drop --strict to freeze around it")
    return freeze_node(prop, node, f"{reason} ({where(prop, node)})")
