"""The public inspection API: what ``isodeploy groups`` and ``isodeploy presets`` show.

:func:`channel_groups` builds and traces a model and returns its coupled channel groups and
isomorphic classes (and, with ``check=``, which classes a pruned copy had to keep dense);
:func:`list_presets` returns the model aliases and pruning recipes of ``models/``.

Re-exported: :func:`load_presets` (:mod:`isodeploy.zoo.presets`), and the rich printers of a
grouping, :func:`print_grouping` and :func:`print_frozen` (:mod:`isodeploy.graph.report`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from isodeploy.core.api_args import check_arg, check_path_arg
from isodeploy.core.errors import ParameterError
from isodeploy.graph.report import print_frozen, print_grouping
from isodeploy.zoo.presets import Alias, Recipe, load_presets

__all__ = ["ChannelGroups", "Presets", "channel_groups", "list_presets", "load_presets", "print_frozen", "print_grouping",
           "recorded_frozen"]


@dataclass
class ChannelGroups:
    """A model's :class:`~isodeploy.graph.analysis.Grouping` and the classes kept dense (``frozen``:
    from the pruned copy ``check=`` made, else as an output folder's spec recorded them, else None).
    ``to_dict()`` is the ``--json`` payload of ``isodeploy groups``."""

    grouping: Any
    frozen: list[dict] | None = None

    def to_dict(self) -> dict[str, Any]:
        payload = self.grouping.to_json()
        if self.frozen is not None:
            payload["frozen_classes"] = self.frozen
        return payload


def channel_groups(model: str | Path, *, weights: str = "pretrained", img_size: int | None = None, strict: bool = False,
                   check: float | None = None, progress: Callable[[str], None] | None = None) -> ChannelGroups:
    """Build ``model`` (alias, timm name, ``torchvision:NAME``, factory or isodeploy folder), trace it
    with torch.export and group its channels: which must be pruned together (groups) and which groups
    share a topology and are ranked only against each other (isomorphic classes).

    ``strict=True`` fails if an op without a channel rule froze any weight's channels. ``check``: also
    prune a copy by that ratio on every class and run the self-check, to learn which classes the
    model's own code keeps from pruning, and why. ``progress`` is told each phase.
    """
    from isodeploy.api.models import analyze, create_model, example_inputs, prune, prune_config

    check_path_arg("model", model)
    check_arg("strict", strict, "bool")
    check_arg("progress", progress, "callable", optional=True)
    phase = progress or (lambda _msg: None)
    if check is not None:
        with _ratio_as_check():  # before the model is built and traced
            prune_config(ratio=check)
    phase(f"loading {model}")
    dense = create_model(str(model), weights=weights, img_size=img_size)
    example = example_inputs(dense)
    phase(f"tracing {model} with torch.export and grouping channels")
    grouping = analyze(dense, example, strict=strict)
    source = getattr(dense, "_isodeploy_source", None)
    grouping.model = source.label if source is not None and source.kind != "none" else str(model)
    frozen = recorded_frozen(model)
    if check is not None:
        phase(f"pruning a copy by {check} and checking it")
        with _ratio_as_check():
            frozen = [f.__dict__ for f in prune(dense, example, ratio=check, strict=strict).frozen]
    return ChannelGroups(grouping=grouping, frozen=frozen)


def recorded_frozen(model: str | Path) -> list[dict] | None:
    """For an isodeploy output folder: the classes its prune froze, as its spec recorded them; else None."""
    path = Path(model)
    if not (path / "isodeploy.json").is_file():
        return None
    from isodeploy.pruning.spec import read_spec

    frozen = read_spec(path).get("frozen_classes")
    return frozen if isinstance(frozen, list) else None


@dataclass
class Presets:
    """The model aliases (→ timm names, default recipe) and pruning recipes of ``models/``, by name.
    ``to_dict()`` is the ``--json`` payload of ``isodeploy presets``."""

    aliases: dict[str, Alias] = field(default_factory=dict)
    recipes: dict[str, Recipe] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"aliases": [a.__dict__ for a in self.aliases.values()], "recipes": [r.to_dict() for r in self.recipes.values()]}


def list_presets() -> Presets:
    """Every alias and recipe in the preset files; a malformed file is one error naming the file."""
    aliases, recipes = load_presets()
    return Presets(aliases=aliases, recipes=recipes)


@contextmanager
def _ratio_as_check() -> Iterator[None]:
    """:func:`prune`'s ``ratio=`` is this function's ``check=`` (the CLI's ``--check``)."""
    try:
        yield
    except ParameterError as exc:
        prefix = f"{exc.param}= "
        if exc.param != "ratio" or not str(exc).startswith(prefix):
            raise
        raise ParameterError("check", str(exc)[len(prefix):], exc.exit_code) from None
