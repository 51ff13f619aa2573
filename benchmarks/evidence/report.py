"""Turn job rows into the result: mean ± std over seeds, the printed Markdown tables and the accuracy plot.

The printed tables *are* Markdown, so docs/evidence.md can quote them exactly as printed. Std is the
sample standard deviation over seeds (n − 1); with one seed only the mean is shown. Accuracy after
fine-tuning is the **last** epoch's, never the best: the validation set is the only held-out set, so
picking the best epoch on it would flatter every method.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from evidence.histograms import class_labels

UNIFORM = "uniform, from scratch"


@dataclass
class Cell:
    """One (model, budget, method) line of the table, aggregated over seeds."""

    model: str
    budget: float | None
    method: str
    ranking: str | None
    importance: str | None
    seeds: list[int]
    macs: list[int]
    dense_macs: int
    pruned: list[float] = field(default_factory=list)
    finetuned: list[float] = field(default_factory=list)
    kept: dict[str, float] = field(default_factory=dict)  # class label → mean % of channels kept
    lowered_target: bool = False  # some seed's target_macs had to be lowered to find a plan (see tasks._prune_to_budget)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    if not values:
        return float("nan"), None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    mean, std = mean_std(values)
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def method_name(ranking: str, importance: str) -> str:
    return f"{ranking} · {importance}"


def aggregate(rows: list[dict[str, Any]]) -> tuple[list[Cell], dict[str, Cell]]:
    """Cells for every (model, budget, method), and one 'dense' cell per model."""
    dense: dict[str, Cell] = {}
    for r in rows:
        if r["kind"] == "dense":
            cell = dense.setdefault(r["model"], Cell(r["model"], None, "dense (teacher)", None, None, [], [], r["macs"]))
            cell.seeds.append(r["seed"])
            cell.macs.append(r["macs"])
            cell.finetuned.append(r["val_top1"])
    cells: dict[tuple, Cell] = {}
    for r in sorted((r for r in rows if r["kind"] != "dense"), key=lambda r: (r["seed"], r["id"])):
        method = UNIFORM if r["kind"] == "scratch" else method_name(r["ranking"], r["importance"])
        key = (r["model"], r["budget"], method)
        dense_macs = dense[r["model"]].dense_macs if r["model"] in dense else r.get("dense_macs", 0)
        cell = cells.setdefault(key, Cell(r["model"], r["budget"], method, r.get("ranking"), r.get("importance"), [], [], dense_macs))
        cell.seeds.append(r["seed"])
        cell.macs.append(r["macs"])
        if r["kind"] == "scratch":
            cell.finetuned.append(r["val_top1"])
        else:
            cell.pruned.append(r["pruned_top1"])
            cell.lowered_target |= r.get("target_factor", 1.0) != 1.0
            cell.finetuned.append(r["finetuned_top1"])
    for cell in cells.values():
        cell.kept = _kept(cell, [r for r in rows if r["kind"] == "prune" and r["model"] == cell.model
                                 and r["budget"] == cell.budget and method_name(r["ranking"], r["importance"]) == cell.method])
    return list(cells.values()), dense


def _kept(cell: Cell, rows: list[dict[str, Any]]) -> dict[str, float]:
    if not rows:
        return {}
    labels = class_labels([c["kind"] for c in rows[0]["classes"]])
    return {label: round(statistics.fmean(100.0 * r["classes"][i]["width_after"] / r["classes"][i]["width_before"] for r in rows), 1)
            for i, label in enumerate(labels)}


def _order(settings) -> dict[str, int]:
    methods = [method_name(r, i) for r in settings.rankings for i in settings.importances] + [UNIFORM]
    return {m: i for i, m in enumerate(methods)}


def accuracy_table(cells: list[Cell], dense: dict[str, Cell], settings, labels: dict[str, str]) -> str:
    """The main table: MACs reached and top-1 after pruning / after fine-tuning; the best fine-tuned mean in bold."""
    order = _order(settings)
    lines = ["| model | budget | method | MACs (M) | % of dense | top-1 after pruning | top-1 after fine-tuning |",
             "|---|---|---|---:|---:|---:|---:|"]
    for model in settings.models:
        if model not in dense:
            continue
        d = dense[model]
        lines.append(f"| {labels[model]} | 100 % | dense (teacher) | {d.dense_macs / 1e6:.2f} | 100.0 | — | {fmt(d.finetuned)} |")
        for budget in settings.budgets:
            block = sorted((c for c in cells if c.model == model and c.budget == budget), key=lambda c: order[c.method])
            best = max((mean_std(c.finetuned)[0] for c in block), default=None)
            for c in block:
                macs = statistics.fmean(c.macs)
                after = fmt(c.finetuned)
                if best is not None and round(mean_std(c.finetuned)[0], 1) == round(best, 1):
                    after = f"**{after}**"
                mark = " †" if c.lowered_target else ""
                lines.append(f"| {labels[model]} | {round(budget * 100)} % | {c.method} | {macs / 1e6:.2f}{mark} | "
                             f"{100 * macs / c.dense_macs:.1f} | {fmt(c.pruned)} | {after} |")
    if any(c.lowered_target for c in cells):
        lines += ["", "† for some seed, no plan landed within 1 % of the budget; the target was lowered in 1 % steps "
                      "until one did (the MACs shown are those reached; per seed in the JSON)."]
    return "\n".join(lines)


def width_table(cells: list[Cell], settings, legends: dict[str, str], labels: dict[str, str]) -> str:
    """Where each ranking put the cuts: % of channels kept per isomorphic class (mean over seeds)."""
    order = _order(settings)
    out = []
    for model in settings.models:
        block = sorted((c for c in cells if c.model == model and c.kept), key=lambda c: (-c.budget, order[c.method]))
        if not block:
            continue
        classes = list(block[0].kept)
        out.append(f"{labels[model]} — % of channels kept per class ({legends.get(model, '')})")
        out.append("")
        out.append("| budget | method | " + " | ".join(classes) + " |")
        out.append("|---|---|" + "---:|" * len(classes))
        for c in block:
            out.append(f"| {round(c.budget * 100)} % | {c.method} | " + " | ".join(f"{c.kept[k]:.0f}" for k in classes) + " |")
        out.append("")
    return "\n".join(out).rstrip()


def importance_table(stats: dict[str, list[dict[str, Any]]], labels: dict[str, str]) -> str:
    """Median and IQR of log10 importance per class: how far apart the classes' scales are."""
    lines = ["| model | class | groups | channels | magnitude: median log10 (IQR) | taylor: median log10 (IQR) |",
             "|---|---|---:|---:|---:|---:|"]
    for model, rows in stats.items():
        for r in rows:
            m, t = r["magnitude"], r["taylor"]
            lines.append(f"| {labels[model]} | {r['name']} | {r['groups']} | {r['channels']} | "
                         f"{m['median_log10']:.2f} ({m['iqr_log10']:.2f}) | {t['median_log10']:.2f} ({t['iqr_log10']:.2f}) |")
    return "\n".join(lines)


def plot_accuracy(cells: list[Cell], dense: dict[str, Cell], settings, labels: dict[str, str], path) -> None:
    """Top row: accuracy right after pruning; bottom row: after fine-tuning. Bars: mean; whiskers: ±1 std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    order = _order(settings)
    methods = sorted(order, key=order.get)
    models = [m for m in settings.models if m in dense]
    fig, axes = plt.subplots(2, len(models), figsize=(6.5 * len(models), 7.5), squeeze=False)
    width = 0.8 / len(methods)
    colors = plt.get_cmap("tab10")
    for col, model in enumerate(models):
        for row, attr in enumerate(("pruned", "finetuned")):
            ax = axes[row][col]
            for k, method in enumerate(methods):
                xs, means, stds = [], [], []
                for j, budget in enumerate(settings.budgets):
                    cell = next((c for c in cells if c.model == model and c.budget == budget and c.method == method), None)
                    values = getattr(cell, attr) if cell else []
                    if values:
                        mean, std = mean_std(values)
                        xs.append(j + (k - (len(methods) - 1) / 2) * width)
                        means.append(mean)
                        stds.append(std or 0.0)
                if xs:
                    ax.bar(xs, means, width, yerr=stds, capsize=2, color=colors(k), label=method)
            ax.axhline(statistics.fmean(dense[model].finetuned), color="k", linestyle="--", linewidth=1, label="dense")
            ax.set_xticks(np.arange(len(settings.budgets)), [f"{round(b * 100)} % MACs" for b in settings.budgets])
            ax.set_ylabel("val top-1 (%)")
            ax.set_title(f"{labels[model]} — {'right after pruning' if attr == 'pruned' else 'after fine-tuning'}", fontsize=10)
            if attr == "finetuned":
                lows = [min(getattr(c, attr)) for c in cells if c.model == model and getattr(c, attr)]
                ax.set_ylim(max(0.0, min(lows) - 3), 100)
    handles, names = axes[1][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(8, len(names)), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
