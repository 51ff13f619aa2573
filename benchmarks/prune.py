"""Wall time and peak memory of pruning DeiT-B to the paper's DeiT-4.2G: isodeploy vs Torch-Pruning.

Each pruner runs in a fresh subprocess so peak memory is its own (peak RSS, VmHWM, reset after
imports). Both use magnitude (L2) importance, the paper's ratios (0.5 / heads 0.5 / head dims 0.25)
and round-to 2, on random weights. Also prints ours vs the paper's MACs/params for the four DeiT
recipes. Torch-Pruning is a benchmark-only dependency (`pip install torch-pruning`).

    python benchmarks/prune.py [--model deit_base_patch16_224] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

RUNNER = textwrap.dedent("""
    import json, os, sys, time, warnings
    warnings.filterwarnings("ignore")
    import torch, timm
    torch.set_num_threads(2)
    which, name = sys.argv[1], sys.argv[2]

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    if which.startswith("isodeploy"):
        from isodeploy.pruning.pruner import prune_model
        from isodeploy.pruning.plan import PruneConfig
        from isodeploy.zoo import load_model
    else:
        import torch_pruning as tp
    base = rss("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM)
    t0 = time.perf_counter()
    if which == "isodeploy":  # the full prune: group, score, plan, apply, self-check (forward + re-trace)
        loaded = load_model(name, weights="random")
        model_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
        t1 = time.perf_counter()
        cfg = PruneConfig(embed_ratio=0.5, mlp_ratio=0.5, head_ratio=0.5, head_dim_ratio=0.25, round_to=2)
        result = prune_model(loaded, cfg)
        macs, params = result.plan.macs_after, result.plan.params_after
    elif which == "isodeploy-unchecked":  # the previous release's path: group, score, plan, apply, no self-check
        import copy
        from isodeploy.graph.analysis import analyze
        from isodeploy.pruning.apply import apply_keep
        from isodeploy.pruning.importance import magnitude
        from isodeploy.pruning.plan import make_plan
        loaded = load_model(name, weights="random")
        model_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
        t1 = time.perf_counter()
        cfg = PruneConfig(embed_ratio=0.5, mlp_ratio=0.5, head_ratio=0.5, head_dim_ratio=0.25, round_to=2)
        grouping = analyze(loaded.model, loaded.example_input(2), name=name)
        model = copy.deepcopy(loaded.model)
        plan = make_plan(grouping, magnitude(model, grouping, "l2"), cfg)
        apply_keep(model, grouping, plan.keep)
        macs, params = plan.macs_after, plan.params_after
    else:
        model = timm.create_model(name, pretrained=False).eval()
        model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        t1 = time.perf_counter()
        example = torch.randn(1, 3, 224, 224)
        num_heads = {m.qkv: m.num_heads for m in model.modules() if isinstance(m, timm.models.vision_transformer.Attention)}
        ratio_dict = {m: 0.25 for m in model.modules() if isinstance(m, timm.models.vision_transformer.Attention)}
        pruner = tp.pruner.MetaPruner(
            model, example, importance=tp.importance.GroupMagnitudeImportance(p=2), global_pruning=True,
            isomorphic=True, pruning_ratio=0.5, pruning_ratio_dict=ratio_dict, ignored_layers=[model.head],
            num_heads=num_heads, prune_head_dims=True, prune_num_heads=True, head_pruning_ratio=0.5, round_to=2)
        pruner.step()
        for m in model.modules():
            if isinstance(m, timm.models.vision_transformer.Attention):
                m.num_heads = pruner.num_heads[m.qkv]
                m.head_dim = m.qkv.out_features // (3 * m.num_heads)
                m.attn_dim = m.num_heads * m.head_dim
                m.scale = m.head_dim ** -0.5
        from isodeploy.benchmarking.macs import count_macs
        report = count_macs(model, torch.randn(2, 3, 224, 224))
        macs, params = report.macs, report.params
    seconds = time.perf_counter() - t1
    peak = rss("VmHWM:")
    print(json.dumps({"pruner": which, "prune_s": seconds, "load_s": t1 - t0, "peak_over_start_mb": (peak - base) / 2**20,
                      "model_mb": model_bytes / 2**20, "macs_g": macs / 1e9, "params_m": params / 1e6}))
""")

PAPER = [
    ("deit-4.2g", "deit_base_distilled_patch16_224", 4.16, 20.69),
    ("deit-2.6g", "deit_base_distilled_patch16_224", 2.62, 13.07),
    ("deit-1.2g", "deit_small_distilled_patch16_224", 1.21, 5.74),
    ("deit-0.6g", "deit_tiny_distilled_patch16_224", 0.62, 3.08),
]


def run(which: str, model: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", RUNNER, which, model], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"pruner": which, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def paper_table() -> list[dict]:
    import warnings

    import torch

    from isodeploy.pruning.pruner import config_from_recipe, prune_model
    from isodeploy.loading import load_model

    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    rows = []
    for recipe, source, macs, params in PAPER:
        loaded = load_model(source, weights="random")
        cfg = config_from_recipe(recipe, {"round_to": 2})
        result = prune_model(loaded, cfg)
        rows.append({"recipe": recipe, "source": source, "ours_macs_g": result.plan.macs_after / 1e9,
                     "ours_params_m": result.plan.params_after / 1e6, "paper_macs_g": macs, "paper_params_m": params})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_base_patch16_224")
    parser.add_argument("--json", default=None)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per pruner; medians are printed")
    parser.add_argument("--no-paper", action="store_true", help="skip the paper-recipe table")
    args = parser.parse_args()
    import statistics

    pruners = ["isodeploy", "isodeploy-unchecked", "torch-pruning"]
    runs: dict[str, list[dict]] = {p: [] for p in pruners}
    for _ in range(args.repeat):  # interleaved (A B C A B C …): a noisy machine slows every pruner alike
        for pruner in pruners:
            runs[pruner].append(run(pruner, args.model))
    results = []
    for pruner in pruners:
        ok = [r for r in runs[pruner] if "error" not in r]
        if not ok:
            results.append(runs[pruner][0])
            continue
        best = dict(ok[0], prune_s=statistics.median(r["prune_s"] for r in ok),
                    peak_over_start_mb=statistics.median(r["peak_over_start_mb"] for r in ok), runs=[r["prune_s"] for r in ok])
        results.append(best)
    print(f"Pruning {args.model} to the DeiT-4.2G recipe (magnitude L2, round to 2, random weights), 2 threads, "
          f"median of {args.repeat} interleaved runs")
    print("isodeploy = group + score + plan + apply + self-check (forward and re-trace); isodeploy-unchecked = the same "
          "without the self-check (the previous release)")
    print(f"{'pruner':20} {'prune s':>8} {'peak over start MB':>19} {'model MB':>9} {'peak/model':>11} {'MACs G':>7} {'params M':>9}")
    for r in results:
        if "error" in r:
            print(f"{r['pruner']:20} failed: {r['error']}")
            continue
        print(f"{r['pruner']:20} {r['prune_s']:>8.2f} {r['peak_over_start_mb']:>19.0f} {r['model_mb']:>9.0f} "
              f"{r['peak_over_start_mb'] / r['model_mb']:>10.2f}x {r['macs_g']:>7.3f} {r['params_m']:>9.2f}")
    rows = [] if args.no_paper else paper_table()
    if rows:
        print("\nThe paper's DeiT recipes (round to 2, magnitude, random weights) vs the paper's Table 2")
        print(f"{'recipe':10} {'source':34} {'ours MACs':>10} {'paper':>6} {'Δ':>6} {'ours params':>12} {'paper':>6} {'Δ':>6}")
    for r in rows:
        dm = r["ours_macs_g"] / r["paper_macs_g"] - 1
        dp = r["ours_params_m"] / r["paper_params_m"] - 1
        print(f"{r['recipe']:10} {r['source']:34} {r['ours_macs_g']:>9.3f}G {r['paper_macs_g']:>6} {dm:>+6.1%} "
              f"{r['ours_params_m']:>11.2f}M {r['paper_params_m']:>6} {dp:>+6.1%}")
    by = {r["pruner"]: r for r in results if "error" not in r}
    if "isodeploy" in by and "isodeploy-unchecked" in by:
        pairs = [a / b for a, b in zip(by["isodeploy"]["runs"], by["isodeploy-unchecked"]["runs"])]
        print(f"self-check cost: {by['isodeploy']['prune_s'] / by['isodeploy-unchecked']['prune_s']:.2f}x the unchecked prune "
              f"(per round {min(pairs):.2f}–{max(pairs):.2f}x; target: within 2x)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"pruners": results, "paper": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
