"""Human-readable tables of a :class:`~isodeploy.graph.analysis.Grouping`."""

from __future__ import annotations

import re

from rich.console import Console
from rich.table import Table

from isodeploy.graph.analysis import Grouping


def _widths(values: list[int]) -> str:
    distinct = sorted(set(values))
    return ", ".join(map(str, distinct[:6])) + (" …" if len(distinct) > 6 else "")


def _collapse_repeats(items) -> list[tuple[str, str, int]]:
    """One row per pattern: the same reason on every block (``blocks.N.attn.qkv.weight:0``) is one row."""
    rows: dict[tuple[str, str], list] = {}
    for item in items:
        key = (re.sub(r"\.\d+\.", ".N.", item.param), re.sub(r"\.\d+\.", ".N.", item.reason))
        rows.setdefault(key, [item.param, item.reason, 0])[2] += 1
    return [tuple(v) for v in rows.values()]


def print_grouping(console: Console, grouping: Grouping, show_params: bool = False) -> None:
    table = Table(title=f"Isomorphic classes of {grouping.model}")
    for col in ("class", "kind", "signature", "groups", "widths", "heads×dim", "params covered"):
        table.add_column(col, overflow="fold")
    for iso in grouping.classes:
        groups = grouping.groups_of(iso)
        heads = sorted({f"{g.heads[0]}×{g.heads[1]}" for g in groups if g.heads})
        covered = sum(len(g.params) for g in groups)
        table.add_row(str(iso.id), iso.kind, iso.signature, str(len(groups)), _widths([g.width for g in groups]),
                      ", ".join(heads[:4]) or "-", str(covered))
    console.print(table)
    if show_params:
        for group in grouping.groups:
            console.print(f"[bold]group {group.id}[/] class {group.class_id} {group.kind} width {group.width}: "
                          + ", ".join(group.params))
    if grouping.unprunable:
        table = Table(title="Not prunable (kept as they are)")
        table.add_column("parameter:dim", overflow="fold")
        table.add_column("reason", overflow="fold")
        for example, reason, count in _collapse_repeats(grouping.unprunable):
            table.add_row(example + (f"  (and {count - 1} more like it)" if count > 1 else ""), reason)
        console.print(table)
    if grouping.unsupported:
        table = Table(title="Ops without a channel rule (their dims were frozen)")
        for col in ("op", "module", "froze"):
            table.add_column(col, overflow="fold")
        for op in grouping.unsupported:
            table.add_row(op.op, op.module or "-", ", ".join(op.froze[:4]) + (" …" if len(op.froze) > 4 else ""))
        console.print(table)
    seconds = grouping.seconds
    console.print(f"{len(grouping.groups)} groups in {len(grouping.classes)} classes; "
                  f"export {seconds.get('export', 0):.2f} s, grouping {seconds.get('grouping', 0):.3f} s")


def print_frozen(console: Console, frozen: list[dict]) -> None:
    """The classes the self-check kept dense, with the module, source line and error that made it."""
    if not frozen:
        console.print("self-check: every class prunes cleanly")
        return
    table = Table(title="Kept dense by the self-check (the model's own code derives these widths)")
    for col in ("class", "kind", "module", "line", "why"):
        table.add_column(col, overflow="fold")
    for f in frozen:
        table.add_row(str(f.get("class_id")), str(f.get("kind")), f.get("module") or "-", f.get("line") or "-", str(f.get("reason")))
    console.print(table)
