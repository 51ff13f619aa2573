"""Time to build groups: isodeploy (torch.export + grouping) vs Torch-Pruning's DependencyGraph.

Prints both side by side in one run (these machines are noisy: compare ratios, not absolutes).
Torch-Pruning is a benchmark-only dependency (`pip install torch-pruning`); isodeploy never imports it.

    python benchmarks/grouper.py [--repeats 3] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings

import timm
import torch

from isodeploy.graph.analysis import analyze

MODELS = ["deit_base_patch16_224", "resnet50"]


def time_ours(model, example) -> tuple[float, float, float, int, int]:
    t0 = time.perf_counter()
    grouping = analyze(model, example)
    total = time.perf_counter() - t0
    return total, grouping.seconds["export"], grouping.seconds["grouping"], len(grouping.groups), len(grouping.classes)


def time_torch_pruning(model, example) -> tuple[float, int]:
    import torch_pruning as tp

    t0 = time.perf_counter()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    groups = list(graph.get_all_groups())
    return time.perf_counter() - t0, len(groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    try:
        import torch_pruning  # noqa: F401
        have_tp = True
    except ImportError:
        have_tp = False
        print("torch-pruning is not installed (pip install torch-pruning): printing isodeploy only")
    rows = []
    for name in MODELS:
        model = timm.create_model(name, pretrained=False).eval()
        example = torch.randn(2, 3, 224, 224)
        ours = [time_ours(model, example) for _ in range(args.repeats)]
        theirs = [time_torch_pruning(model, example) for _ in range(args.repeats)] if have_tp else []
        row = {
            "model": name,
            "ours_total_s": statistics.median(r[0] for r in ours),
            "ours_export_s": statistics.median(r[1] for r in ours),
            "ours_grouping_s": statistics.median(r[2] for r in ours),
            "ours_groups": ours[0][3],
            "ours_classes": ours[0][4],
            "tp_build_and_groups_s": statistics.median(r[0] for r in theirs) if theirs else None,
            "tp_groups": theirs[0][1] if theirs else None,
        }
        rows.append(row)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, timm {timm.__version__}; median of {args.repeats}")
    print(f"{'model':26} {'ours total':>10} {'export':>8} {'grouping':>9} {'groups':>7} {'classes':>8} "
          f"{'TP build+groups':>16} {'TP groups':>9} {'TP/ours':>8}")
    for r in rows:
        tp_s = r["tp_build_and_groups_s"]
        ratio = f"{tp_s / r['ours_total_s']:.2f}x" if tp_s else "-"
        print(f"{r['model']:26} {r['ours_total_s']:>9.2f}s {r['ours_export_s']:>7.2f}s {r['ours_grouping_s']:>8.3f}s "
              f"{r['ours_groups']:>7} {r['ours_classes']:>8} {(f'{tp_s:.2f}s' if tp_s else '-'):>16} "
              f"{str(r['tp_groups'] or '-'):>9} {ratio:>8}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
