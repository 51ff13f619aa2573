"""The paper's figure: per-channel importance of each isomorphic class of a trained dense model.

Scores are the raw numbers the pruner ranks (``isodeploy.pruning.importance``), with no per-class
normalisation, because a global ranking compares exactly these numbers. The x-axis is log10 of the
score (the classes differ by orders of magnitude); every class's histogram has unit area, so a class
with few channels (one embedding group, 12 heads) is as visible as one with thousands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

KIND_LABEL = {"embedding": "residual/embedding", "hidden": "MLP hidden", "heads": "attention heads", "head_dim": "attention head dims"}
CNN_KIND_LABEL = {"embedding": "residual stage", "hidden": "block inner"}


@dataclass
class ClassScores:
    label: str  # short: "E", "M", "H", "D" (ViT) or "E1", "M2" … (CNN)
    name: str  # for people
    kind: str
    groups: int
    channels: int
    scores: dict[str, list[float]]  # importance → per-channel scores (all groups of the class)
    group_medians: dict[str, list[float]]  # importance → per-group median score


def class_labels(kinds: list[str]) -> list[str]:
    """One short label per class, numbered when a kind occurs more than once (CNNs)."""
    letter = {"embedding": "E", "hidden": "M", "heads": "H", "head_dim": "D"}
    seen: dict[str, int] = {}
    labels = []
    for kind in kinds:
        seen[kind] = seen.get(kind, 0) + 1
        many = kinds.count(kind) > 1
        labels.append(letter.get(kind, kind[:1].upper()) + (str(seen[kind]) if many else ""))
    return labels


def importance_by_class(loaded, train_folder: str, calib_batches: int) -> list[ClassScores]:
    """Magnitude (L2) and Taylor scores of every channel, grouped by isomorphic class."""
    from isodeploy.graph.analysis import analyze
    from isodeploy.pruning.calib import calibration_batches
    from isodeploy.pruning.importance import magnitude, taylor

    model = loaded.model
    grouping = analyze(model, loaded.example_input(2), name=loaded.timm_name)
    scores = {"magnitude": magnitude(model, grouping, "l2"),
              "taylor": taylor(model, grouping, calibration_batches(train_folder, loaded.input_size, loaded.mean,
                                                                    loaded.std, calib_batches))}
    is_cnn = not any(c.kind in ("heads", "head_dim") for c in grouping.classes)
    names = CNN_KIND_LABEL if is_cnn else KIND_LABEL
    labels = class_labels([c.kind for c in grouping.classes])
    out = []
    for iso, label in zip(grouping.classes, labels):
        groups = grouping.groups_of(iso)
        per = {imp: [s[g.id].numpy() for g in groups] for imp, s in scores.items()}
        widths = "/".join(str(g.width) for g in groups)
        out.append(ClassScores(
            label=label, name=f"{label}: {names.get(iso.kind, iso.kind)} ({len(groups)}× {widths if len(groups) <= 6 else groups[0].width})",
            kind=iso.kind, groups=len(groups), channels=sum(g.width for g in groups),
            scores={imp: np.concatenate(v).tolist() for imp, v in per.items()},
            group_medians={imp: [float(np.median(a)) for a in v] for imp, v in per.items()}))
    return out


def summary(classes: list[ClassScores]) -> list[dict[str, Any]]:
    """Per class and importance: median and interquartile range of log10 score, and the spread of group medians."""
    rows = []
    for c in classes:
        row: dict[str, Any] = {"class": c.label, "name": c.name, "groups": c.groups, "channels": c.channels}
        for imp, values in c.scores.items():
            logs = np.log10(np.maximum(np.asarray(values), 1e-30))
            q1, med, q3 = np.percentile(logs, [25, 50, 75])
            group_logs = np.log10(np.maximum(np.asarray(c.group_medians[imp]), 1e-30))
            row[imp] = {"median_log10": round(float(med), 3), "iqr_log10": round(float(q3 - q1), 3),
                        "group_median_range_log10": round(float(group_logs.max() - group_logs.min()), 3)}
        rows.append(row)
    return rows


def plot(panels: dict[str, list[ClassScores]], titles: dict[str, str], path) -> None:
    """One row per model, one column per importance; step histograms of log10 score, one colour per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    importances = ("magnitude", "taylor")
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.6 * len(panels)), squeeze=False)
    for row, (key, classes) in enumerate(panels.items()):
        for col, imp in enumerate(importances):
            ax = axes[row][col]
            logs = [np.log10(np.maximum(np.asarray(c.scores[imp]), 1e-30)) for c in classes]
            low = min(np.percentile(v, 0.5) for v in logs)
            high = max(v.max() for v in logs)
            bins = np.linspace(low, high, 50)
            for c, v in zip(classes, logs):
                ax.hist(np.clip(v, low, high), bins=bins, density=True, histtype="stepfilled", alpha=0.35, label=c.name)
                ax.hist(np.clip(v, low, high), bins=bins, density=True, histtype="step", linewidth=1.2, color=ax.patches[-1].get_facecolor()[:3])
            ax.set_title(f"{titles[key]} — {imp} importance", fontsize=10)
            ax.set_xlabel("log10(channel importance)  [raw score, as ranked]")
            ax.set_ylabel("density (each class: area 1)")
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
