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

    from isodeploy.api import prune_config
    from isodeploy.api.inspect import channel_groups, print_frozen, print_grouping
    from isodeploy.commands.common import check_model_argument, flags_as

    if check is not None:
        with flags_as({"ratio": "--check"}):  # before the model is built and traced
            prune_config(ratio=check)
    check_model_argument(model, weights, img_size)
    check_report_paths({"--json": json_path}, inputs=[model, weights])

    console = Console(stderr=False)
    with console.status(f"loading {model}") as status:
        result = channel_groups(model, weights=weights, img_size=img_size, strict=strict, check=check, progress=status.update)
    print_grouping(console, result.grouping, show_params=show_params)
    if result.frozen is not None:
        print_frozen(console, result.frozen)
    if json_path:
        write_json_atomic(json_path, result.to_dict())
        console.print(f"wrote {json_path}")


def register(app: typer.Typer) -> None:
    app.command("groups")(groups)
