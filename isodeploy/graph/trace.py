"""torch.export front end: one exported graph with every node mapped to its module and parameters.

Export settings (docs/grouper.md §1): eval mode, non-strict, default IR (linear and SDPA stay single
ops), static shapes, example batch ≥ 2 so that the batch dim is not specialised to 1.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from isodeploy.core.errors import IsodeployError


@dataclass
class TracedGraph:
    """An exported program plus the lookups the grouper needs."""

    exported: torch.export.ExportedProgram
    #: placeholder node name → qualified parameter or buffer name ("blocks.0.attn.qkv.weight")
    state_of: dict[str, str]
    #: qualified names that are parameters (the rest of ``state_of`` values are buffers)
    parameters: set[str]
    user_inputs: list[str]
    constants: set[str] = field(default_factory=set)

    @property
    def graph(self) -> fx.Graph:
        return self.exported.graph

    def module_of(self, node: fx.Node) -> str:
        """The innermost module path a node was traced in ("" for the root)."""
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return ""
        path = list(stack.values())[-1][0]
        # Paths look like "L['self'].blocks[0].attn" in some torch versions; normalise to dotted form.
        return _normalise_path(path)

    def module_type_of(self, node: fx.Node) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return ""
        typ = list(stack.values())[-1][1]
        return typ.__name__ if isinstance(typ, type) else str(typ).rsplit(".", 1)[-1].strip("'>")


def _normalise_path(path: str) -> str:
    path = path.replace("L['self'].", "").replace("L['self']", "")
    parts = [p.strip("'\"") for p in path.replace("[", ".").replace("]", "").split(".") if p]
    if parts and parts[0] == "self":  # the root's name in some torch versions; a submodule may itself be
        parts = parts[1:]             # called "self" (transformers' attention.self) and must stay
    return ".".join(parts)


def trace(model: nn.Module, example: torch.Tensor, name: str = "model", stack_traces: bool = False) -> TracedGraph:
    """Export ``model`` on ``example`` (batch ≥ 2); a failure becomes one clear line naming the model.

    ``stack_traces`` keeps each node's source line (about 15 % slower): ``strict`` runs want it, so a
    failing rule's error can name the line of model code.
    """
    if example.shape[0] < 2:
        raise ValueError("trace needs an example batch of at least 2: torch.export specialises size-1 dims")
    was_training = model.training
    model.eval()
    import torch.fx.config as fx_config

    # Stack traces of every node cost ~15 % of export time and the grouper never reads them.
    emit_traces = fx_config.do_not_emit_stack_traces
    fx_config.do_not_emit_stack_traces = not stack_traces
    previous_disable = logging.root.manager.disable
    logging.disable(logging.WARNING)  # export logs whole graphs when it fails; our error says it in one line
    try:
        # On failure torch.export also prints the partial graph to stderr: our error line says enough.
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            exported = torch.export.export(model, (example,), strict=False)
    except Exception as exc:  # export raises many internal exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise IsodeployError(f"model '{name}' failed to export with torch.export ({type(exc).__name__}: {first[:200]})"
                             f"{_hint(exc)}") from exc
    finally:
        logging.disable(previous_disable)
        fx_config.do_not_emit_stack_traces = emit_traces
        model.train(was_training)
    sig = exported.graph_signature
    state_of = dict(sig.inputs_to_parameters)
    state_of.update(sig.inputs_to_buffers)
    _drop_unused_aliases(exported, model, state_of)
    constants = set(getattr(sig, "inputs_to_lifted_tensor_constants", {}) or {})
    return TracedGraph(
        exported=exported,
        state_of=state_of,
        parameters=set(sig.inputs_to_parameters.values()) & set(state_of.values()),
        user_inputs=list(sig.user_inputs),
        constants=constants,
    )


def _hint(exc: Exception) -> str:
    """What the Python construct behind a common export failure is, and what to do about it."""
    kind = type(exc).__name__
    if "DataDependent" in kind or "data-dependent" in str(exc):
        return ("; the forward branches on tensor values (e.g. `if x.sum() > 0:`), which a static trace cannot follow: "
                "make the branch depend on shapes or attributes only")
    if "Unsupported" in kind:
        return "; the forward uses a Python construct torch.export does not support"
    return ""


def _drop_unused_aliases(exported: torch.export.ExportedProgram, model: nn.Module, state_of: dict[str, str]) -> None:
    """A tied tensor (one module used twice, tied weights) is lifted once per name, and the graph
    uses one of them: forget the unused names, so the tensor is one unit and is counted once."""
    tensors: dict[int, list[str]] = {}
    for name, tensor in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False)):
        if tensor is not None:
            tensors.setdefault(id(tensor), []).append(name)
    tied = {name for names in tensors.values() if len(names) > 1 for name in names}
    if not tied:
        return
    for node in exported.graph.nodes:
        if node.op == "placeholder" and state_of.get(node.name) in tied and not node.users:
            del state_of[node.name]
