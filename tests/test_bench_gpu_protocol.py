"""``benchmarks/gpu_protocol.py --dry-run``: the GPU script's code path on the CPU, tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_dry_run_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_protocol.py"), "--dry-run", "--out", str(out), "--latency", "0.6"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((out / "gpu_protocol.json").read_text())
    assert data["dry_run"] is True and data["schema"] == "isodeploy.bench/1"
    roles = {(r["runtime"], r["role"]) for r in data["results"]}
    assert roles == {(rt, role) for rt in ("torch", "ort") for role in ("dense", "pruned", "uniform-twin")}
    assert abs(data["twin"]["mac_error"]) <= 0.01
    metrics = {(r["metric"], r["numerator_role"], r["denominator_role"]) for r in data["ratios"]}
    assert ("latency_per_gmac", "pruned", "uniform-twin") in metrics and ("peak_memory", "pruned", "uniform-twin") in metrics
    lat = data["latency_budget"]  # the latency-budget prune ran (on onnxruntime CPU in the dry run) and was measured
    assert lat["budget"]["fraction"] == 0.6 and lat["runtime"] == "ort" and lat["table"]["measurements"] >= 4
    assert 0 < lat["measured_ratio"]["value"] < 1 and lat["macs_kept"] < 1
    md = (out / "gpu_protocol.md").read_text()
    assert "dry run" in md and "pruned ÷ uniform-twin" in md and "Wall time" in md
