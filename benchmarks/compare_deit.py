"""The canonical comparison in one interleaved run: pruned DeiT-4.2G (non-uniform) vs its uniform twin
(every class cut by one ratio, same MACs ±1 %) vs deit_small (the standard model of that size) vs dense deit_base.

    python benchmarks/compare_deit.py [--out benchmarks/out] [--runtime ort] [--iters 100] [--warmup 20] [--threads 2]

Builds the pruned model with ``isodeploy prune deit_b --preset deit-4.2g --weights random -o DIR``, then
runs ``isodeploy compare deit_base DIR deit_small --uniform-twin`` (table, ratios with their spread over
the interleaved rounds, latency-vs-MACs plot) and prints the wall time. Defaults follow the protocol
(batch 8 on CPU, 20 + 100 steps); ``--iters 30 --warmup 5`` is a quicker look. Random weights: latency
does not depend on weight values, and this machine has no network.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "isodeploy"]


def run(args: list[str]) -> None:
    print("$ isodeploy " + " ".join(args), flush=True)
    code = subprocess.run([*CLI, *args]).returncode
    if code != 0:
        sys.exit(f"isodeploy {args[0]} failed with exit code {code}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    ap.add_argument("--runtime", default="ort", help="torch, ort or trt (comma-separated for several)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-repeats", type=int, default=3, help="fresh-process memory probes per model (spread of the memory ratios)")
    opts = ap.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    pruned = opts.out / "deit_4.2g"
    if not (pruned / "isodeploy.json").is_file():
        run(["prune", "deit_b", "--preset", "deit-4.2g", "--weights", "random", "-o", str(pruned)])
    # the first artifact is the reference for speed-up and MAC reduction; --uniform-twin adds the twin of the pruned folder
    artifacts = ["deit_base_patch16_224", str(pruned), "deit_small_patch16_224"]

    args = ["compare", *artifacts, "--uniform-twin", "--weights", "random", "--runtime", opts.runtime, "--iters", str(opts.iters),
            "--warmup", str(opts.warmup), "--json", str(opts.out / "compare_deit.json"), "--md", str(opts.out / "compare_deit.md"),
            "--plot", str(opts.out / "compare_deit.png")]
    if opts.device:
        args += ["--device", opts.device]
    if opts.threads:
        args += ["--threads", str(opts.threads)]
    if opts.no_memory:
        args.append("--no-memory")
    else:
        args += ["--memory-repeats", str(opts.memory_repeats)]
    run(args)
    print(f"wall time: {time.perf_counter() - start:.0f} s (table: {opts.out / 'compare_deit.md'}, plot: {opts.out / 'compare_deit.png'})")


if __name__ == "__main__":
    main()
