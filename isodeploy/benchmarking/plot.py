"""Latency per GMAC against GMACs, with 95 % error bars: does pruning buy the speed its MACs promise?

Why per GMAC on the y axis: the models a pruned-vs-uniform comparison cares about sit at the *same*
MACs (pruned, uniform twin, a standard model of that size), so on a plain latency-vs-MACs plot they
pile up on one spot; per GMAC, their differences are the vertical distances, and a lower point gets
more done per MAC. One marker per role (★ pruned, ◆ uniform twin, ● dense, ■ standard), one colour
per runtime (legend: lines, so no symbol means two things); error bars are the 95 % interval of the
typical step over rounds. Labels are placed greedily in display space so they never overlap each
other or a marker, with a leader line when pushed away from their point.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from isodeploy.benchmarking.compare import CompareReport
from isodeploy.benchmarking.envinfo import describe_machine
from isodeploy.core.errors import IsodeployError

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
ROLE_MARKERS = {"pruned": "*", "uniform-twin": "D", "dense": "o", "standard": "s", "uniform": "o"}
ROLE_NAMES = {"pruned": "pruned (non-uniform)", "uniform-twin": "uniform twin (same MACs)", "dense": "dense", "standard": "standard model",
              "uniform": "uniform"}
MARKER_RADIUS_PX = 9  # the obstacle each marker makes for the labels (a 180 pt² star is about 15 px across at 120 dpi)


def _points(report: CompareReport) -> list[dict[str, Any]]:
    """Every (artifact, runtime) with MACs: x in GMAC, y in ms per GMAC, its error bar, its style."""
    out = []
    colors = _colors()
    for i, key in enumerate(report.columns):
        for row in report.rows:
            if not row.macs or key not in row.latency_ms:
                continue
            g = row.macs / 1e9
            low, high = row.latency_ci_ms.get(key, [row.latency_ms[key]] * 2)
            y = row.latency_ms[key] / g
            out.append({"x": g, "y": y, "low": min(low / g, y), "high": max(high / g, y), "kind": row.kind, "key": key,
                        "color": colors[i % len(colors)], "label": row.label, "first": i == 0})
    return out


def _colors() -> list[str]:
    import matplotlib.pyplot as plt

    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _overlaps(a: Any, b: Any, pad: float = 2.0) -> bool:
    return not (a.x1 + pad <= b.x0 or b.x1 + pad <= a.x0 or a.y1 + pad <= b.y0 or b.y1 + pad <= a.y0)


def _candidates() -> list[tuple[float, float]]:
    """Offsets in points, nearest first: right, above, left, below and the diagonals, at growing distance."""
    out = []
    for r in (8, 18, 30, 44, 60, 80):
        for deg in (20, -20, 60, -60, 160, 200, 110, 250, 0, 180, 90, 270):
            out.append((r * math.cos(math.radians(deg)), r * math.sin(math.radians(deg))))
    return out


def place_labels(ax: Any, points: list[dict[str, Any]]) -> list[Any]:
    """Annotate each labelled point where its text overlaps no other label, no marker, and stays in the axes."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    markers = []
    for p in points:
        x, y = ax.transData.transform((p["x"], p["y"]))
        markers.append(Bbox.from_extents(x - MARKER_RADIUS_PX, y - MARKER_RADIUS_PX, x + MARKER_RADIUS_PX, y + MARKER_RADIUS_PX))
    placed: list[Any] = []
    artists = []
    for p in sorted((p for p in points if p["first"]), key=lambda p: (p["x"], p["y"])):
        text = f"{p['label']}\n{p['y']:.1f} ms/GMAC"
        chosen = None
        for dx, dy in _candidates():
            ann, box = _annotate(ax, renderer, p, text, dx, dy)
            inside = box.x0 >= axes_box.x0 and box.x1 <= axes_box.x1 and box.y0 >= axes_box.y0 and box.y1 <= axes_box.y1
            if inside and not any(_overlaps(box, o) for o in placed + markers):
                chosen = (ann, box)
                break
            ann.remove()
        if chosen is None:  # nowhere free: the farthest candidate, still drawn (never silently dropped)
            chosen = _annotate(ax, renderer, p, text, *_candidates()[-1])
        placed.append(chosen[1])
        artists.append(chosen[0])
    return artists


def _annotate(ax: Any, renderer: Any, p: dict[str, Any], text: str, dx: float, dy: float) -> tuple[Any, Any]:
    """One label at offset (dx, dy) points, with a leader line when it sits away from its marker; returns it and its text box."""
    from matplotlib.text import Text

    arrow = {"arrowstyle": "-", "color": "0.5", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 5} if math.hypot(dx, dy) > 12 else None
    ann = ax.annotate(text, (p["x"], p["y"]), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                      ha="left" if dx >= 0 else "right", va="bottom" if dy >= 0 else "top", arrowprops=arrow)
    ann.update_positions(renderer)  # an annotation's text lands at its offset only when positioned
    return ann, Text.get_window_extent(ann, renderer)  # the text alone: the leader line may cross markers


def draw(report: CompareReport) -> tuple[Any, Any, list[Any]]:
    """The figure, its axes and the label artists (tests check the labels' boxes)."""
    points = _points(report)
    if not points:
        raise IsodeployError("no compared artifact has a MAC count, so there is nothing to plot (pass models or isodeploy folders)")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    for p in points:
        ax.errorbar([p["x"]], [p["y"]], yerr=[[p["y"] - p["low"]], [p["high"] - p["y"]]], fmt="none", ecolor=p["color"], elinewidth=1, capsize=3, zorder=2)
        ax.scatter([p["x"]], [p["y"]], marker=ROLE_MARKERS.get(p["kind"], "o"), s=180 if p["kind"] == "pruned" else 60, color=p["color"],
                   edgecolors="black", linewidths=0.6, zorder=3)
    xmax = max(p["x"] for p in points)
    ymax = max(p["high"] for p in points)
    ax.set_xlim(0, xmax * 1.35)  # room for labels on the right of the largest model
    ax.set_ylim(0, ymax * 1.35)
    handles = [Line2D([], [], color=c, linewidth=2, label=key) for key, c in zip(report.columns, _colors())]
    for kind in dict.fromkeys(p["kind"] for p in points):
        handles.append(Line2D([], [], color="0.4", marker=ROLE_MARKERS.get(kind, "o"), markersize=11 if kind == "pruned" else 7,
                              linestyle="", markeredgecolor="black", label=ROLE_NAMES.get(kind, kind)))
    ax.set_xlabel("MACs per image (G)")
    ax.set_ylabel(f"p50 latency per GMAC, batch of {report.batch} (ms / GMAC)")
    relative = " (CPU: relative to this machine)" if any(k.endswith("/cpu") for k in report.columns) else ""
    ax.set_title(f"Latency per GMAC vs MACs, 95 % intervals — {describe_machine(report.env)}{relative}", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.9)
    fig.tight_layout()
    labels = place_labels(ax, points)
    return fig, ax, labels


def plot_latency_vs_macs(report: CompareReport, out: Path) -> Path:
    """Write the plot to ``out`` (.png, .svg or .pdf) atomically, mode 0644 like every artifact; returns the path."""
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise IsodeployError(f"--plot '{out}' must end in {', '.join(FORMATS)}")
    import matplotlib.pyplot as plt

    from isodeploy.core.safe_write import atomic_path

    fig, _, _ = draw(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out) as tmp:  # never onto a link or a special file; 0644 like every artifact
            fig.savefig(tmp, format=fmt)
    finally:
        plt.close(fig)
    return out
