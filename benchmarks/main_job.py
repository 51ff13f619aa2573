"""The main job, timed: `isodeploy prune-export deit_b --target onnx --weights random` run back to back.

    python benchmarks/main_job.py [--runs 3] [--out benchmarks/out/main_job] [--model deit_b] [-- extra prune-export flags]

Each run starts from an empty output folder (every stage runs: prune, export, verify, dense export,
uniform twin, standard model, bench, report, Triton), exactly as a newcomer's first run does. Prints
per run: the wall time, each stage's seconds, and the headline ratio (pruned ÷ uniform twin, latency
per GMAC) with its 95 % interval and verdict; then whether the runs agree (no `faster` beside a
`slower`, intervals overlapping). Writes benchmarks/results/main_job.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "isodeploy"]


def one_run(model: str, folder: Path, extra: list[str]) -> dict:
    if folder.exists():
        shutil.rmtree(folder)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    cmd = [*CLI, "prune-export", model, "--target", "onnx", "--weights", "random", "-o", str(folder), *extra]
    print("$ " + " ".join(cmd[2:]), flush=True)
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    if code != 0:
        sys.exit(f"prune-export failed with exit code {code}")
    report = json.loads((folder / "report.json").read_text())
    verdict = report.get("verdict") or {}
    proto = report.get("protocol") or {}
    return {"wall_s": round(wall, 1), "load_before": round(load_before, 2), "stages": {s["name"]: s["seconds"] for s in report["stages"]},
            "verdict": verdict, "stop": proto.get("stop"), "steps": proto.get("steps"), "load": report.get("load")}


def agreement(runs: list[dict]) -> dict:
    verdicts = [r["verdict"].get("verdict") for r in runs if r["verdict"]]
    lows = [r["verdict"]["ci_low"] for r in runs if r["verdict"]]
    highs = [r["verdict"]["ci_high"] for r in runs if r["verdict"]]
    return {"contradicting": "faster" in verdicts and "slower" in verdicts,
            "intervals_overlap": bool(lows) and max(lows) <= min(highs), "verdicts": verdicts}


def markdown(runs: list[dict], agree: dict, machine: str) -> str:
    stages = list(dict.fromkeys(name for r in runs for name in r["stages"]))
    lines = [f"# Main job, {len(runs)} runs back to back ({machine})", "",
             "| run | wall | " + " | ".join(stages) + " | pruned ÷ twin per GMAC (95 % CI) | verdict | rounds | stop |",
             "|---|---|" + "---|" * len(stages) + "---|---|---|---|"]
    for i, r in enumerate(runs, 1):
        v, stop = r["verdict"], r["stop"] or {}
        ratio = f"{v['value']:.3f}× ({v['ci_low']:.3f}–{v['ci_high']:.3f})" if v else "-"
        lines.append(f"| {i} | {r['wall_s'] / 60:.1f} min | " + " | ".join(f"{r['stages'].get(s, 0):.0f} s" for s in stages)
                     + f" | {ratio} | {v.get('verdict', '-')} | {stop.get('rounds', '-')} | {stop.get('reason', '-')} |")
    lines += ["", f"Contradicting verdicts: {'yes' if agree['contradicting'] else 'no'}; intervals overlap: {'yes' if agree['intervals_overlap'] else 'no'}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model", default="deit_b")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/main_job"))
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="flags passed to prune-export after --")
    args = ap.parse_args()
    extra = [a for a in args.extra if a != "--"]
    runs = []
    for i in range(args.runs):
        r = one_run(args.model, args.out / f"run{i + 1}", extra)
        v = r["verdict"]
        print(f"run {i + 1}: {r['wall_s'] / 60:.1f} min; " + ", ".join(f"{k} {s:.0f} s" for k, s in r["stages"].items()), flush=True)
        if v:
            print(f"  pruned ÷ twin per GMAC: {v['sentence']}", flush=True)
        runs.append(r)
    agree = agreement(runs)
    import platform

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(markdown(runs, agree, machine))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "main_job.json").write_text(json.dumps({"machine": machine, "runs": runs, "agreement": agree}, indent=1))
    (args.results / "main_job.md").write_text(markdown(runs, agree, machine))


if __name__ == "__main__":
    main()
