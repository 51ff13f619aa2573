"""Latency against MACs: the picture that shows whether pruning bought real speed.

One colour per runtime/device, one marker per kind (★ pruned, ● uniform); a model that sits below
the line through the uniform models is faster than its MACs predict.
"""

from __future__ import annotations

from pathlib import Path

from isodeploy.bench.compare import CompareReport
from isodeploy.bench.envinfo import describe_machine
from isodeploy.errors import IsodeployError

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
MARKERS = {True: "*", False: "o"}
ROLE_MARKERS = {"pruned": "*", "uniform-twin": "D", "dense": "o", "standard": "s", "uniform": "o"}
ROLE_NAMES = {"pruned": "pruned (non-uniform)", "uniform-twin": "uniform twin (same MACs)", "dense": "dense", "standard": "standard timm model",
              "uniform": "uniform (timm)"}


def plot_latency_vs_macs(report: CompareReport, out: Path) -> Path:
    """Write the plot to ``out`` (.png, .svg or .pdf) atomically; returns the path."""
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise IsodeployError(f"--plot '{out}' must end in {', '.join(FORMATS)}")
    points = [row for row in report.rows if row.macs]
    if not points:
        raise IsodeployError("no compared artifact has a MAC count, so there is nothing to plot (pass models or isodeploy folders)")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    labelled: set[str] = set()
    for i, key in enumerate(report.columns):
        color = colors[i % len(colors)]
        handles.append(Line2D([], [], color=color, marker="s", linestyle="", label=key))
        for row in points:
            if key not in row.latency_ms:
                continue
            x, y = row.macs / 1e9, row.latency_ms[key]
            kind = row.kind
            ax.scatter([x], [y], marker=ROLE_MARKERS.get(kind, MARKERS[row.pruned]), s=180 if kind == "pruned" else 70, color=color,
                       edgecolors="black", linewidths=0.6, zorder=3)
            if row.label not in labelled:  # one label per model, at its first point, to keep the plot legible
                labelled.add(row.label)
                ax.annotate(row.label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
        uniform = sorted((r.macs / 1e9, r.latency_ms[key]) for r in points if r.kind != "pruned" and key in r.latency_ms)
        if len(uniform) >= 2:
            ax.plot(*zip(*uniform), color=color, linestyle=":", linewidth=1, zorder=2)
    kinds = list(dict.fromkeys(r.kind for r in points))
    for kind in kinds:
        handles.append(Line2D([], [], color="gray", marker=ROLE_MARKERS.get(kind, "o"), markersize=12 if kind == "pruned" else 7,
                              linestyle="", label=ROLE_NAMES.get(kind, kind)))
    ax.set_xlabel("MACs per image (G)")
    ax.set_ylabel(f"p50 latency per batch of {report.batch} (ms)")
    relative = " (CPU figures are relative to this machine)" if any(k.endswith("/cpu") for k in report.columns) else ""
    ax.set_title(f"Latency vs MACs — {describe_machine(report.env)}{relative}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.set_xlim(0, max(r.macs for r in points) / 1e9 * 1.3)  # room for the labels on the right
    ax.set_ylim(bottom=0)
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    fig.tight_layout()
    from isodeploy.core.safe_write import atomic_path

    try:
        with atomic_path(out) as tmp:  # never onto a link or a special file
            fig.savefig(tmp, format=fmt)
    finally:
        plt.close(fig)
    return out
