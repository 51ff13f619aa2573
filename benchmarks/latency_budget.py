"""Latency-aware vs MAC-targeted vs uniform pruning, compared at equal *measured* latency.

    python benchmarks/latency_budget.py [--models deit_small_patch16_224 resnet50] [--budgets 0.6 0.4]
                                        [--batch 1] [--threads 2] [--final-budget 90]

For each model and budget (a fraction of the dense model's latency on onnxruntime CPU):
* latency-aware: ``prune_to_latency`` (table built once per model, its time reported; solver; check);
* MAC-targeted: isomorphic ranking at ``target_macs``, the MAC target moved until its *measured*
  latency is within 2 % of the budget (at most 5 measured tries);
* uniform: every group cut by one ratio (the uniform twin's rule), brought to the budget the same way.
Then the three and the dense model are timed in one interleaved adaptive run (pairs vs dense and
latency-aware vs each other), and the table prints MACs and parameters kept at that latency.
Writes benchmarks/results/latency_budget.{json,md}. Random weights (no hub here): capacity, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


class _Shared:
    """The benchmark's one measurer (one dense export), lent to each prune, which would otherwise close it."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def close(self) -> None:
        pass


def _prune_at_macs(dense, example, target_macs: float, ranking: str):
    from isodeploy.pruning.plan import PruneConfig
    from isodeploy.pruning.pruner import prune_module

    cfg = PruneConfig(ratio=0.5, ranking=ranking, target_macs=float(target_macs), round_to=8 if ranking == "isomorphic" else 2)
    return prune_module(dense, example, cfg)


def _bring_to_budget(dense, example, measurer, budget: float, ranking: str, macs0: int, say) -> tuple:
    """Move the MAC target until the measured latency ratio is within 2 % of ``budget`` (≤ 5 tries)."""
    target = budget * macs0
    best = None
    from isodeploy.core.errors import IsodeployError

    for attempt in range(5):
        for nudge in (1.0, 0.98, 1.02, 0.96, 1.04, 0.94, 1.06):
            try:  # rounding can leave no plan within 1 % of a target: take the nearest reachable one
                result = _prune_at_macs(dense, example, target * nudge, ranking)
                target *= nudge
                break
            except IsodeployError:
                continue
        else:
            raise IsodeployError(f"no {ranking} plan within 6 % of {target / 1e9:.3g} GMACs")
        ratio = measurer.ratio_of(result.model, f"{ranking} @ {target / 1e9:.3g}G").ratio.value
        say(f"  {ranking}: target {target / 1e9:.3g} GMACs → {ratio:.3f}× dense")
        if best is None or abs(ratio - budget) < abs(best[1] - budget):
            best = (result, ratio)
        if abs(ratio / budget - 1) <= 0.02:
            break
        target *= (budget / ratio)  # latency is near-proportional to MACs for one rule
    return best


def run_model(name: str, budgets: list[float], batch: int, threads: int, final_budget: float, cache: Path) -> list[dict]:
    import torch
    from isodeploy.api import create_model, example_inputs
    from isodeploy.benchmarking.protocol import Protocol
    from isodeploy.benchmarking.schedule import headline_intervals, run_adaptive
    from isodeploy.latency.budget import parse_latency_budget
    from isodeploy.latency.measure import Measurer
    from isodeploy.latency.prune import prune_to_latency
    from isodeploy.latency.settings import LatencySettings
    from isodeploy.pruning.plan import PruneConfig

    os.environ["ISODEPLOY_CACHE_DIR"] = str(cache)
    say = lambda m: print(m, flush=True)  # noqa: E731
    torch.manual_seed(0)
    dense = create_model(name, weights="random")
    example = example_inputs(dense)
    timing = example[:1].expand(batch, *example.shape[1:]).contiguous()
    measurer = Measurer(dense, timing, threads=threads)
    rows = []
    try:
        for budget in budgets:
            say(f"== {name} at {budget:g} × dense")
            t0 = time.perf_counter()
            settings = LatencySettings(budget=parse_latency_budget(str(budget)), batch=batch, threads=threads,
                                       measurer=lambda _d, _e: _Shared(measurer))
            aware = prune_to_latency(dense, example, PruneConfig(), settings, progress=lambda m: say("  " + m), name=name)
            lat = aware.spec["latency"]
            aware_s = time.perf_counter() - t0
            macs0, params0 = aware.plan.macs_before, aware.plan.params_before
            mac_res, _ = _bring_to_budget(dense, example, measurer, budget, "isomorphic", macs0, say)
            uni_res, _ = _bring_to_budget(dense, example, measurer, budget, "local", macs0, say)
            entries = {k: measurer.open(r.model, k) for k, r in (("latency-aware", aware), ("MAC-targeted", mac_res), ("uniform", uni_res))}
            pairs = [(entries["latency-aware"], measurer.dense), (entries["MAC-targeted"], measurer.dense), (entries["uniform"], measurer.dense),
                     (entries["latency-aware"], entries["MAC-targeted"]), (entries["latency-aware"], entries["uniform"])]
            for e in [*entries.values(), measurer.dense]:
                e.rounds.clear()
                e.round_ids.clear()
            say(f"  final: one interleaved run of the three and the dense model (≤ {final_budget:g} s)")
            outcome = run_adaptive([*entries.values(), measurer.dense], Protocol(name="adaptive", budget_s=final_budget, target=0.02), pairs=pairs)
            ivs = headline_intervals(pairs, [])
            row = {"model": name, "budget": budget, "batch": batch, "threads": threads, "rounds": outcome.rounds, "stop": outcome.reason,
                   "table_build_s": lat["table"]["build_seconds"], "table_reused": lat["table"]["reused"],
                   "table_measurements": lat["table"]["measurements"], "aware_seconds": round(aware_s, 1),
                   "aware_predicted": lat["predicted_ratio"], "aware_prediction_error": lat["prediction_error"],
                   "aware_corrective_step": lat["corrective_step"], "methods": {}}
            for (label, result), iv in zip((("latency-aware", aware), ("MAC-targeted", mac_res), ("uniform", uni_res)), ivs[:3]):
                row["methods"][label] = {"latency_ratio": iv.to_dict(), "macs_kept": result.plan.macs_after / macs0,
                                         "params_kept": result.plan.params_after / params0, "macs": result.plan.macs_after,
                                         "params": result.plan.params_after}
            row["aware_vs_macs"] = ivs[3].to_dict()
            row["aware_vs_uniform"] = ivs[4].to_dict()
            rows.append(row)
            _print_row(row)
    finally:
        measurer.close()
    return rows


def _print_row(row: dict) -> None:
    print(f"\n{row['model']} at {row['budget']:g} × dense (batch {row['batch']}, {row['threads']} threads, {row['rounds']} rounds, {row['stop']}):")
    print(f"  {'method':<15} {'latency ÷ dense (95 % CI)':<28} {'MACs kept':>10} {'params kept':>12} {'params kept ÷ latency':>22}")
    for label, m in row["methods"].items():
        iv = m["latency_ratio"]
        print(f"  {label:<15} {iv['value']:.3f} ({iv['ci_low']:.3f}–{iv['ci_high']:.3f})     {m['macs_kept']:>10.1%} {m['params_kept']:>12.1%}"
              f" {m['params_kept'] / iv['value']:>22.3f}")
    for k in ("aware_vs_macs", "aware_vs_uniform"):
        iv = row[k]
        print(f"  {k.replace('_', ' ')}: latency {iv['value']:.3f}× ({iv['ci_low']:.3f}–{iv['ci_high']:.3f}), {iv['verdict']}")
    print(f"  table: {row['table_build_s']:.0f} s, {row['table_measurements']} measurements (reused: {row['table_reused']}); "
          f"prediction error {row['aware_prediction_error']:+.1%}, corrective step: {row['aware_corrective_step']}", flush=True)


def markdown(rows: list[dict], machine: str) -> str:
    lines = [f"# Latency-aware vs MAC-targeted vs uniform at equal measured latency", "", f"Machine: {machine}.", "",
             "| model | budget | method | latency ÷ dense (95 % CI) | MACs kept | params kept | params kept ÷ latency |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        for label, m in row["methods"].items():
            iv = m["latency_ratio"]
            lines.append(f"| {row['model']} | {row['budget']:g} | {label} | {iv['value']:.3f} ({iv['ci_low']:.3f}–{iv['ci_high']:.3f}) "
                         f"| {m['macs_kept']:.1%} | {m['params_kept']:.1%} | {m['params_kept'] / iv['value']:.3f} |")
    lines += ["", "| model | budget | table build | measurements | prediction error | corrective step | aware ÷ MAC-targeted latency | aware ÷ uniform latency |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        a, b = row["aware_vs_macs"], row["aware_vs_uniform"]
        lines.append(f"| {row['model']} | {row['budget']:g} | {row['table_build_s']:.0f} s{' (reused)' if row['table_reused'] else ''} | "
                     f"{row['table_measurements']} | {row['aware_prediction_error']:+.1%} | {row['aware_corrective_step']} | "
                     f"{a['value']:.3f} ({a['ci_low']:.3f}–{a['ci_high']:.3f}) | {b['value']:.3f} ({b['ci_low']:.3f}–{b['ci_high']:.3f}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["deit_small_patch16_224", "resnet50"])
    ap.add_argument("--budgets", nargs="+", type=float, default=[0.6, 0.4])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--final-budget", type=float, default=90.0)
    ap.add_argument("--cache", type=Path, default=Path(__file__).parent / "out" / "latency_cache")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    from isodeploy.benchmarking.envinfo import cpu_model

    machine = f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}, onnxruntime CPU"
    rows = []
    args.results.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        rows += run_model(name, args.budgets, args.batch, args.threads, args.final_budget, args.cache)
        # written after every model: a long run that is stopped keeps what it measured
        (args.results / "latency_budget.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
        (args.results / "latency_budget.md").write_text(markdown(rows, machine))
    print(f"\nwrote {args.results / 'latency_budget.md'}")


if __name__ == "__main__":
    sys.exit(main())
