"""The per-class summary `isodeploy prune` prints."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def _g(value: float) -> str:
    return f"{value / 1e9:.3f} G"


def print_summary(console: Console, result, output: Path | None = None) -> None:
    """Print what pruning did: MACs and params before/after, each class's widths, frozen classes and why."""
    cfg, plan = result.config, result.plan
    title = f"{result.grouping.model}: {cfg.ranking} ranking, {cfg.importance} importance, round to {cfg.round_to}"
    if cfg.preset:
        title += f", preset {cfg.preset}"
    table = Table(title=title)
    for col in ("class", "kind", "signature", "groups", "width before → after", "per-group widths after"):
        table.add_column(col, overflow="fold")
    for c in result.classes:
        widths = sorted(set(c.widths_after))
        shown = ", ".join(map(str, widths[:6])) + (" …" if len(widths) > 6 else "")
        table.add_row(str(c.id), c.kind, c.signature, str(c.groups), f"{c.width_before} → {c.width_after}",
                      shown if not c.frozen else "[yellow]frozen[/]")
    console.print(table)
    for frozen in result.frozen:
        console.print(f"[yellow]class {frozen.class_id} ({frozen.kind}) kept dense: {frozen.reason}[/]")
    cost = plan.macs_after - plan.macs_unrounded
    console.print(
        f"MACs {_g(plan.macs_before)} → {_g(plan.macs_after)} ({plan.macs_after / plan.macs_before:.1%}); "
        f"params {plan.params_before / 1e6:.2f} M → {plan.params_after / 1e6:.2f} M; "
        f"rounding to {cfg.round_to} cost {cost / 1e6:+.1f} M MACs"
        + (f"; ratio scale {plan.scale:.3f} for --target-macs" if cfg.target_macs else "")
    )
    latency = result.spec.get("latency")
    if latency:
        console.print(latency_line(latency))
    if result.spec.get("source", {}).get("weights") == "random":
        console.print("[yellow]weights were random: accuracy figures of this model mean nothing[/]")
    if output is not None:
        console.print(f"wrote {output}/model.safetensors and {output}/isodeploy.json")


def latency_line(latency: dict, markup: bool = True) -> str:
    """Budget, measured (95 % CI), predicted and the table, in one line (the spec's ``latency`` record)."""
    r, ms, b = latency["measured_ratio"], latency["measured_ms"], latency["budget"]
    budget = f"{b['ms']:.4g} ms" if b.get("ms") is not None else f"{b['fraction']:.3g} × dense"
    table = latency["table"]
    ok = "within" if latency["within_tolerance"] else ("[yellow]outside[/]" if markup else "**outside**")
    built = "reused" if table["reused"] else f"built in {table['build_seconds']:.0f} s"
    where = f", {table['path']}" if table.get("path") else ""
    corrected = "; after one corrective step" if latency["corrective_step"] else ""
    return (f"latency on {latency['runtime']} (batch {latency['batch']}, {latency['threads']} threads): budget {budget}; measured "
            f"{ms['value']:.4g} ms = {r['value']:.3f}× dense (95 % CI {r['ci_low']:.3f}–{r['ci_high']:.3f}), {latency['budget_error']:+.1%} "
            f"off the budget ({ok} ±5 %); predicted {latency['predicted_ratio']:.3f}× (error {latency['prediction_error']:+.1%})"
            f"{corrected}; table {built} ({table['measurements']} measurements{where})")
