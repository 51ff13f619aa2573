"""``isodeploy groups MODEL``: the coupled channel groups and their isomorphic classes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import MODEL_HELP, check_report_paths, ImgSizeOption, JsonOption, WeightsOption, write_json_atomic


def groups(
    model: str = typer.Argument(..., help=MODEL_HELP),
    weights: str = WeightsOption,
    img_size: Optional[int] = ImgSizeOption,
    strict: bool = typer.Option(False, "--strict", help="Fail if an op without a channel rule froze any weight's channels."),
    show_params: bool = typer.Option(False, "--params", help="List every parameter dim of every group."),
    check: Optional[float] = typer.Option(None, "--check", metavar="RATIO",
                                          help="Also prune a copy by RATIO on every class and run the self-check: "
                                               "which classes the model's own code keeps from pruning, and why."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Trace MODEL with torch.export and print its groups (channels that must be pruned together)
    and isomorphic classes (groups with the same topology, ranked only against each other)."""
    from rich.console import Console

    import isodeploy
    from isodeploy.commands.common import check_model_argument, flags_as
    from isodeploy.graph.report import print_frozen, print_grouping

    if check is not None:
        with flags_as({"ratio": "--check"}):  # before the model is built and traced
            from isodeploy.api import prune_config

            prune_config(ratio=check)
    check_model_argument(model, weights, img_size)
    check_report_paths({"--json": json_path}, inputs=[model, weights])

    console = Console(stderr=False)
    with console.status(f"loading {model}"):
        dense = isodeploy.create_model(model, weights=weights, img_size=img_size)
        example = isodeploy.example_inputs(dense)
    with console.status(f"tracing {model} with torch.export and grouping channels"):
        grouping = isodeploy.analyze(dense, example, strict=strict)
    source = getattr(dense, "_isodeploy_source", None)
    grouping.model = source.label if source is not None and source.kind != "none" else model
    print_grouping(console, grouping, show_params=show_params)
    payload = grouping.to_json()
    frozen = _recorded_frozen(model)
    if check is not None:
        with console.status(f"pruning a copy by {check} and checking it"):
            with flags_as({"ratio": "--check"}):
                frozen = [f.__dict__ for f in isodeploy.prune(dense, example, ratio=check, strict=strict).frozen]
    if frozen is not None:
        print_frozen(console, frozen)
        payload["frozen_classes"] = frozen
    if json_path:
        write_json_atomic(json_path, payload)
        console.print(f"wrote {json_path}")


def _recorded_frozen(model: str) -> list[dict] | None:
    """For an output folder: the classes its prune froze, as its spec recorded them."""
    path = Path(model)
    if not (path / "isodeploy.json").is_file():
        return None
    from isodeploy.pruning.spec import read_spec

    frozen = read_spec(path).get("frozen_classes")
    return frozen if isinstance(frozen, list) else None


def register(app: typer.Typer) -> None:
    app.command("groups")(groups)
