"""``isodeploy presets``: list model aliases and pruning recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from isodeploy.commands.common import JsonOption, check_report_paths, write_json_atomic


def presets(json_path: Optional[Path] = JsonOption) -> None:
    """List model aliases (→ timm names, default recipe) and pruning recipes with their provenance."""
    from isodeploy.api.inspect import list_presets

    check_report_paths({"--json": json_path})
    found = list_presets()
    aliases, recipes = found.aliases, found.recipes
    console = Console()
    table = Table(title="Model aliases")
    for col in ("alias", "timm model", "default recipe", "file"):
        table.add_column(col)
    for alias in aliases.values():
        table.add_row(alias.name, alias.timm, alias.recipe or "-", alias.file)
    console.print(table)
    table = Table(title="Pruning recipes (fractions removed)")
    for col in ("recipe", "family", "ratio", "embed", "mlp", "heads", "head dim", "provenance"):
        table.add_column(col)
    fmt = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
    for r in recipes.values():
        table.add_row(r.name, r.family, fmt(r.ratio), fmt(r.embed_ratio), fmt(r.mlp_ratio), fmt(r.head_ratio), fmt(r.head_dim_ratio), r.provenance)
    console.print(table)
    if json_path:
        write_json_atomic(json_path, found.to_dict())


def register(app: typer.Typer) -> None:
    app.command("presets")(presets)
