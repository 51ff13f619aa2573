"""The canonical comparison: pruned DeiT-4.2G (non-uniform) vs deit_small (uniform, same MACs) vs dense deit_base.

    python benchmarks/compare_deit.py [--out benchmarks/out] [--runtime ort] [--iters 20] [--threads 2]

Builds the pruned model with ``isodeploy prune deit_b --preset deit-4.2g --weights random -o DIR`` when
the prune command exists; otherwise compares dense deit_base and deit_small only and says so. Then
runs ``isodeploy compare`` (table + latency-vs-MACs plot) and prints the wall time. Random weights:
latency does not depend on weight values, and this machine has no network.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "isodeploy"]


def has_command(name: str) -> bool:
    return subprocess.run([*CLI, name, "--help"], capture_output=True).returncode == 0


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
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps (onnxruntime CPU is steady after the first; bench's own default is 20)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-memory", action="store_true")
    opts = ap.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    artifacts = ["deit_base_patch16_224"]  # the first artifact is the reference for speed-up and MAC reduction
    if has_command("prune"):
        pruned = opts.out / "deit_4.2g"
        run(["prune", "deit_b", "--preset", "deit-4.2g", "--weights", "random", "-o", str(pruned)])
        artifacts.append(str(pruned))
    else:
        print("note: 'isodeploy prune' is not available in this checkout: comparing dense deit_base vs deit_small only", flush=True)
    artifacts.append("deit_small_patch16_224")

    args = ["compare", *artifacts, "--weights", "random", "--runtime", opts.runtime, "--iters", str(opts.iters),
            "--warmup", str(opts.warmup), "--json", str(opts.out / "compare_deit.json"), "--md", str(opts.out / "compare_deit.md"),
            "--plot", str(opts.out / "compare_deit.png")]
    if opts.device:
        args += ["--device", opts.device]
    if opts.threads:
        args += ["--threads", str(opts.threads)]
    if opts.no_memory:
        args.append("--no-memory")
    run(args)
    print(f"wall time: {time.perf_counter() - start:.0f} s (table: {opts.out / 'compare_deit.md'}, plot: {opts.out / 'compare_deit.png'})")


if __name__ == "__main__":
    main()
