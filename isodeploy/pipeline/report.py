"""``DIR/report.md`` and ``DIR/report.json`` of a ``prune-export`` run, written for a person to read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from isodeploy.core.safe_write import write_json_atomic, write_text_atomic
from isodeploy.pipeline.report_bench import headline_verdict, latency_section


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e9:.3f} G"


def _m(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e6:.2f} M"


def build_report(p, load_json: Callable[[Path], dict | None]) -> dict[str, Any]:
    """Gather what the stages left in the folder into one dict (also the report.json payload)."""
    state = load_json(p.dir / "isodeploy.json") or {}
    stages = {r.name: r for r in p.book.records}
    # a file counts only when the stage that writes it belongs to this run (ran, or was found fresh):
    # a folder of an earlier run must not lend this report its tables
    bench = load_json(p.dir / "bench.json") if "bench" in stages else None
    latency = []
    if bench:
        for r in bench.get("results", []):
            lat = r.get("latency", {})
            mem = r.get("memory") or {}
            macs = r.get("macs")
            p50 = lat.get("p50_ms")
            default = "fp16" if r.get("runtime") == "trt" else "fp32"
            variant = (r.get("runtime") or "") + (f"+{r.get('precision')}" if r.get("precision") not in (None, default) else "") + ("+compile" if r.get("compiled") else "")
            latency.append({"artifact": Path(r.get("artifact", "")).name, "role": r.get("role") or ("pruned" if r.get("pruned") else ""),
                            "pruned": r.get("pruned"), "runtime": r.get("runtime"), "variant": variant, "precision": r.get("precision"),
                            "device": r.get("device"), "batch": r.get("batch"), "threads": r.get("threads"),
                            "warmup": r.get("warmup_steps", (bench.get("settings") or {}).get("warmup")), "iters": lat.get("iters"),
                            "rounds": len(lat.get("rounds_ms") or []),
                            "p50_ms": p50, "mean_ms": lat.get("mean_ms"), "cv": lat.get("cv"),
                            "noisy": lat.get("noisy"), "throughput_ips": lat.get("throughput_ips"), "macs": macs,
                            "ms_per_gmac": p50 / (macs / 1e9) if p50 and macs else None,
                            "peak_mb": mem.get("delta_mb"), "peak_total_mb": mem.get("peak_mb"), "memory_method": mem.get("method_id")})
    twin_detail = (stages.get("uniform-twin").detail if "uniform-twin" in stages else {}) or {}
    standard_detail = (stages.get("export-standard").detail if "export-standard" in stages else {}) or {}
    twin = twin_detail.get("twin")  # a stage found fresh carries its recorded detail; one not in this run, none
    standard = standard_detail
    from isodeploy.benchmarking.twin import misaligned_head_dims

    head_dim_flags = {"pruned": misaligned_head_dims(state.get("classes", [])),
                      "uniform-twin": misaligned_head_dims((twin or {}).get("classes", []))}
    memory_methods = sorted({m for r in (bench or {}).get("results", []) if (m := ((r.get("memory") or {}).get("method")))})
    verify = {name: load_json(p.dir / f) for name, f, stage in (
        ("onnxruntime FP32 vs PyTorch", "verify.json", "verify"),
        ("onnxruntime FP16 vs FP32 (a sanity check: onnxruntime CPU computes FP16 regions in FP32, so overflow shows only in the engine check)",
         "verify_fp16.json", "verify-fp16"),
        ("TensorRT vs onnxruntime FP32", "verify_engine.json", "verify-engine")) if stage in stages}
    source = state.get("source", {})
    artifacts = [f for f, stage in ARTIFACT_STAGES if (p.dir / f).exists() and stage in stages]
    stale = [f for f, stage in ARTIFACT_STAGES if (p.dir / f).exists() and stage not in stages]
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
        "latency_budget": state.get("latency"),
        "classes": state.get("classes", []),
        "numerics": {k: {"passed": v.get("passed"), "gates": (v.get("gates") or {}), "outputs": v.get("outputs", [])[:1]}
                     for k, v in verify.items() if v},
        "latency": latency,
        "ratios": (bench or {}).get("ratios", []),
        "verdict": headline_verdict((bench or {}).get("ratios", [])),
        "protocol": _protocol(bench),
        "load": (bench or {}).get("load") or None,
        "memory_methods": memory_methods,
        "twin": twin,
        "standard": standard or None,
        "head_dim_flags": head_dim_flags,
        "plot": "latency_vs_macs.png" if bench and (p.dir / "latency_vs_macs.png").is_file() else None,
        "machine": (bench or {}).get("env", {}),
        "stages": [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 2)} for r in stages.values()],
        "skipped": [{"stage": s, "why": why} for s, why in p.skipped],
        "exit_code": p.exit_code,
        "message": p.message,
        "artifacts": artifacts,
        "stale_artifacts": stale,
    }


#: each artifact of the folder and the stage that writes it
ARTIFACT_STAGES = (("model.safetensors", "prune"), ("isodeploy.json", "prune"), ("model.onnx", "export"), ("model.fp16.onnx", "fp16"),
                   ("model.plan", "engine"), ("dense.onnx", "export-dense"), ("uniform", "uniform-twin"), ("uniform.onnx", "uniform-twin"),
                   ("standard.onnx", "export-standard"), ("bench.json", "bench"), ("latency_vs_macs.png", "bench"), ("triton", "triton"))


def _protocol(bench: dict | None) -> dict[str, Any] | None:
    if not bench:
        return None
    s = bench.get("settings") or {}
    rounds = max((len((r.get("latency") or {}).get("rounds_ms") or []) for r in bench.get("results", [])), default=0)
    batches = sorted({r.get("batch") for r in bench.get("results", []) if r.get("batch")})
    proto = bench.get("protocol") or {}
    return {"name": proto.get("name") or s.get("protocol"), "description": proto.get("description"), "stop": proto.get("stop"),
            "steps": proto.get("steps"), "batches": batches, "warmup": s.get("warmup"), "iters": s.get("iters"), "rounds": rounds,
            "cpu_threads": s.get("threads"), "memory_repeats": s.get("memory_repeats"),
            "paper": "CPU batch 8, GPU batch 256, 20 warm-up + 100 timed steps (--bench-protocol paper)"}


def _provenance(preset: str | None) -> str | None:
    if not preset:
        return None
    from isodeploy.zoo.presets import load_presets

    recipe = load_presets()[1].get(preset)
    return recipe.provenance if recipe else None


def _recipe_line(recipe: dict[str, Any]) -> str:
    keys = ("ratio", "embed_ratio", "mlp_ratio", "head_ratio", "head_dim_ratio")
    ratios = ", ".join(f"{k.replace('_ratio', '') or 'ratio'} {recipe[k]:g}" for k in keys if recipe.get(k) is not None)
    return (f"preset `{recipe.get('preset') or '-'}`: {ratios or 'no ratios'}; {recipe.get('ranking')} ranking, "
            f"{recipe.get('importance')} importance, widths rounded to {recipe.get('round_to')}")


def _widths(widths: list[int]) -> str:
    distinct = sorted(set(widths))
    return ", ".join(map(str, distinct[:8])) + (" …" if len(distinct) > 8 else "")


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
    if data.get("latency_budget"):
        from isodeploy.pruning.report import latency_line

        lines += ["Latency budget: " + latency_line(data["latency_budget"], markup=False) + ".", ""]
    twin_classes = {c.get("id"): c for c in (data.get("twin") or {}).get("classes", []) if isinstance(c, dict)}
    twin_col = bool(twin_classes)
    lines += ["| class | kind | signature | groups | width before → after | per-group widths after |" + (" uniform twin widths |" if twin_col else ""),
              "|---|---|---|---|---|---|" + ("---|" if twin_col else "")]
    for c in data["classes"]:
        row = (f"| {c['id']} | {c['kind']} | `{c['signature']}` | {c['groups']} | {c['width_before']} → {c['width_after']} | "
               f"{_widths(c.get('widths_after', []))} |")
        if twin_col:
            row += f" {_widths(twin_classes[c['id']].get('widths_after', [])) if c.get('id') in twin_classes else '-'} |"
        lines.append(row)
    lines += ["", "## Numerics", ""]
    if not data["numerics"]:
        lines.append("No numeric check ran.")
    for name, v in data["numerics"].items():
        out = (v.get("outputs") or [{}])[0]
        figures = ", ".join(f"{k} {out[k]:.3g}" for k in ("max_abs", "mean_abs", "p99_abs", "max_rel", "min_cosine", "top1_agreement")
                            if isinstance(out.get(k), (int, float)))
        lines.append(f"- {name}: **{'passed' if v.get('passed') else 'FAILED'}** ({figures})")
    lines += ["", "## Latency and memory: pruned vs uniform at the same MACs", ""]
    if data["latency"]:
        lines += latency_section(data)
    else:
        lines.append("Not measured (`--no-bench`, or a stage before it stopped the run).")
    lines += ["", "## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['status']} | {s['seconds']:.1f} |" for s in data["stages"]]
    if data["skipped"]:
        lines += ["", "Skipped:"] + [f"- {s['stage']}: {s['why']}" for s in data["skipped"]]
    if data["message"]:
        lines += ["", f"**Stopped (exit {data['exit_code']}):** {data['message']}"]
    lines += ["", "## Artifacts", ""] + [f"- `{a}`" for a in data["artifacts"]]
    if data.get("stale_artifacts"):
        lines += ["", "Left by an earlier run (this run did not reach or redo their stages; not used above): "
                  + ", ".join(f"`{a}`" for a in data["stale_artifacts"])]
    lines.append("")
    return "\n".join(lines)


def write_report(folder: Path, data: dict[str, Any]) -> None:
    write_json_atomic(folder / "report.json", data)
    write_text_atomic(folder / "report.md", render_markdown(data))
