"""``isodeploy groups MODEL``: the coupled channel groups and their isomorphic classes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import MODEL_HELP, ImgSizeOption, JsonOption, WeightsOption, write_json_atomic


def groups(
    model: str = typer.Argument(..., help=MODEL_HELP),
    weights: str = WeightsOption,
    img_size: Optional[int] = ImgSizeOption,
    strict: bool = typer.Option(False, "--strict", help="Fail if an op without a channel rule froze any weight's channels."),
    show_params: bool = typer.Option(False, "--params", help="List every parameter dim of every group."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Trace MODEL with torch.export and print its groups (channels that must be pruned together)
    and isomorphic classes (groups with the same topology, ranked only against each other)."""
    from rich.console import Console

    from isodeploy.graph.analysis import analyze
    from isodeploy.graph.report import print_grouping
    from isodeploy.zoo import load_model

    console = Console(stderr=False)
    with console.status(f"loading {model}"):
        loaded = load_model(model, weights=weights, img_size=img_size)
    with console.status(f"tracing {loaded.timm_name} with torch.export and grouping channels"):
        grouping = analyze(loaded.model, loaded.example_input(2), name=loaded.timm_name, strict=strict)
    print_grouping(console, grouping, show_params=show_params)
    if json_path:
        write_json_atomic(json_path, grouping.to_json())
        console.print(f"wrote {json_path}")


def register(app: typer.Typer) -> None:
    app.command("groups")(groups)
