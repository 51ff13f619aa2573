"""``DIR/report.md`` and ``DIR/report.json`` of a ``prune-export`` run, written for a person to read."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from isodeploy.fileio import write_json_atomic


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e9:.3f} G"


def _m(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e6:.2f} M"


def build_report(p, load_json: Callable[[Path], dict | None]) -> dict[str, Any]:
    """Gather what the stages left in the folder into one dict (also the report.json payload)."""
    state = load_json(p.dir / "isodeploy.json") or {}
    stages = {r.name: r for r in p.book.records}
    bench = load_json(p.dir / "bench.json")
    latency = []
    if bench:
        for r in bench.get("results", []):
            lat = r.get("latency", {})
            latency.append({"artifact": Path(r.get("artifact", "")).name, "pruned": r.get("pruned"), "runtime": r.get("runtime"),
                            "device": r.get("device"), "batch": r.get("batch"), "threads": r.get("threads"),
                            "p50_ms": lat.get("p50_ms"), "mean_ms": lat.get("mean_ms"), "cv": lat.get("cv"),
                            "noisy": lat.get("noisy"), "throughput_ips": lat.get("throughput_ips"),
                            "peak_mb": (r.get("memory") or {}).get("delta_mb")})
    verify = {name: load_json(p.dir / f) for name, f in (("onnxruntime FP32 vs PyTorch", "verify.json"),
                                                         ("onnxruntime FP16 vs FP32 (a sanity check: onnxruntime CPU computes FP16 regions in FP32, "
                                                          "so overflow shows only in the engine check)", "verify_fp16.json"),
                                                         ("TensorRT vs onnxruntime FP32", "verify_engine.json"))}
    source = state.get("source", {})
    artifacts = [f for f in ("model.safetensors", "isodeploy.json", "model.onnx", "model.fp16.onnx", "model.plan", "dense.onnx",
                             "bench.json", "triton") if (p.dir / f).exists()]
    return {
        "model": source.get("timm"),
        "query": p.opts.model,
        "target": p.opts.target,
        "weights": source.get("weights", p.opts.weights),
        "random_weights": source.get("weights") == "random",
        "recipe": state.get("config", {}),
        "provenance": _provenance(state.get("config", {}).get("preset")),
        "macs": state.get("macs", {}),
        "params": state.get("params", {}),
        "classes": state.get("classes", []),
        "numerics": {k: {"passed": v.get("passed"), "gates": (v.get("gates") or {}), "outputs": v.get("outputs", [])[:1]}
                     for k, v in verify.items() if v},
        "latency": latency,
        "machine": (bench or {}).get("env", {}),
        "stages": [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 2)} for r in stages.values()],
        "skipped": [{"stage": s, "why": why} for s, why in p.skipped],
        "exit_code": p.exit_code,
        "message": p.message,
        "artifacts": artifacts,
    }


def _provenance(preset: str | None) -> str | None:
    if not preset:
        return None
    from isodeploy.presets_store import load_presets

    recipe = load_presets()[1].get(preset)
    return recipe.provenance if recipe else None


def _recipe_line(recipe: dict[str, Any]) -> str:
    keys = ("ratio", "embed_ratio", "mlp_ratio", "head_ratio", "head_dim_ratio")
    ratios = ", ".join(f"{k.replace('_ratio', '') or 'ratio'} {recipe[k]:g}" for k in keys if recipe.get(k) is not None)
    return (f"preset `{recipe.get('preset') or '-'}`: {ratios or 'no ratios'}; {recipe.get('ranking')} ranking, "
            f"{recipe.get('importance')} importance, widths rounded to {recipe.get('round_to')}")


def render_markdown(data: dict[str, Any]) -> str:
    lines = [f"# isodeploy report: {data['model']} (`{data['query']}`, target {data['target']})", ""]
    if data["random_weights"]:
        lines += ["> **Weights were random** (`--weights random`): accuracy and numerics on real images mean nothing here;",
                  "> the widths, MACs, latency and the export checks still do.", ""]
    else:
        lines += [f"Weights: {data['weights']}", ""]
    lines += ["## Pruning", "", f"Recipe: {_recipe_line(data['recipe'])}."]
    if data.get("provenance"):
        lines.append(f"Provenance: {data['provenance']}.")
    lines.append("")
    macs, params = data["macs"], data["params"]
    if macs:
        ratio = macs["after"] / macs["before"] if macs.get("before") else 0
        lines += [f"MACs {_g(macs.get('before'))} → {_g(macs.get('after'))} ({ratio:.1%}); params {_m(params.get('before'))} → "
                  f"{_m(params.get('after'))}; rounding cost {(macs.get('rounding_cost') or 0) / 1e6:+.1f} M MACs.", ""]
    lines += ["| class | kind | signature | groups | width before → after | per-group widths after |", "|---|---|---|---|---|---|"]
    for c in data["classes"]:
        widths = sorted(set(c.get("widths_after", [])))
        shown = ", ".join(map(str, widths[:8])) + (" …" if len(widths) > 8 else "")
        lines.append(f"| {c['id']} | {c['kind']} | `{c['signature']}` | {c['groups']} | {c['width_before']} → {c['width_after']} | {shown} |")
    lines += ["", "## Numerics", ""]
    if not data["numerics"]:
        lines.append("No numeric check ran.")
    for name, v in data["numerics"].items():
        out = (v.get("outputs") or [{}])[0]
        figures = ", ".join(f"{k} {out[k]:.3g}" for k in ("max_abs", "mean_abs", "p99_abs", "max_rel", "min_cosine", "top1_agreement")
                            if isinstance(out.get(k), (int, float)))
        lines.append(f"- {name}: **{'passed' if v.get('passed') else 'FAILED'}** ({figures})")
    lines += ["", "## Latency", ""]
    if data["latency"]:
        machine = data["machine"]
        desc = machine.get("description") or f"{machine.get('cpu', 'CPU')} ({machine.get('cores', '?')} cores)"
        lines += [f"Measured on {desc}. CPU figures are relative: compare the rows, not other machines.", "",
                  "| artifact | pruned | runtime | device | batch | threads | p50 ms | mean ms | CV | images/s | memory added MB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in data["latency"]:
            cv = f"{r['cv']:.1%}" + (" (noisy)" if r.get("noisy") else "") if isinstance(r.get("cv"), float) else "-"
            peak = f"{r['peak_mb']:.0f}" if isinstance(r.get("peak_mb"), (int, float)) else "-"
            lines.append(f"| {r['artifact']} | {r['pruned']} | {r['runtime']} | {r['device']} | {r['batch']} | {r['threads']} | "
                         f"{r['p50_ms']:.2f} | {r['mean_ms']:.2f} | {cv} | {r['throughput_ips']:.1f} | {peak} |")
    else:
        lines.append("Not measured (`--no-bench`, or a stage before it stopped the run).")
    lines += ["", "## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['status']} | {s['seconds']:.1f} |" for s in data["stages"]]
    if data["skipped"]:
        lines += ["", "Skipped:"] + [f"- {s['stage']}: {s['why']}" for s in data["skipped"]]
    if data["message"]:
        lines += ["", f"**Stopped (exit {data['exit_code']}):** {data['message']}"]
    lines += ["", "## Artifacts", ""] + [f"- `{a}`" for a in data["artifacts"]] + [""]
    return "\n".join(lines)


def write_report(folder: Path, data: dict[str, Any]) -> None:
    write_json_atomic(folder / "report.json", data)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".report.md.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(render_markdown(data))
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / "report.md")
