"""``DIR/report.md`` and ``DIR/report.json`` of a ``prune-export`` run, written for a person to read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from isodeploy.fileio import write_json_atomic, write_text_atomic


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
            mem = r.get("memory") or {}
            macs = r.get("macs")
            p50 = lat.get("p50_ms")
            default = "fp16" if r.get("runtime") == "trt" else "fp32"
            variant = (r.get("runtime") or "") + (f"+{r.get('precision')}" if r.get("precision") not in (None, default) else "") + ("+compile" if r.get("compiled") else "")
            latency.append({"artifact": Path(r.get("artifact", "")).name, "role": r.get("role") or ("pruned" if r.get("pruned") else ""),
                            "pruned": r.get("pruned"), "runtime": r.get("runtime"), "variant": variant, "precision": r.get("precision"),
                            "device": r.get("device"), "batch": r.get("batch"), "threads": r.get("threads"),
                            "warmup": (bench.get("settings") or {}).get("warmup"), "iters": lat.get("iters"), "rounds": len(lat.get("rounds_ms") or []),
                            "p50_ms": p50, "mean_ms": lat.get("mean_ms"), "cv": lat.get("cv"),
                            "noisy": lat.get("noisy"), "throughput_ips": lat.get("throughput_ips"), "macs": macs,
                            "ms_per_gmac": p50 / (macs / 1e9) if p50 and macs else None,
                            "peak_mb": mem.get("delta_mb"), "peak_total_mb": mem.get("peak_mb"), "memory_method": mem.get("method_id")})
    twin_detail = (stages.get("uniform-twin").detail if "uniform-twin" in stages else {}) or {}
    standard_detail = (stages.get("export-standard").detail if "export-standard" in stages else {}) or {}
    twin = twin_detail.get("twin") or (_recorded_detail(p, "uniform-twin").get("twin"))
    standard = standard_detail or _recorded_detail(p, "export-standard")
    from isodeploy.bench.twin import misaligned_head_dims

    head_dim_flags = {"pruned": misaligned_head_dims(state.get("classes", [])),
                      "uniform-twin": misaligned_head_dims((twin or {}).get("classes", []))}
    memory_methods = sorted({m for r in (bench or {}).get("results", []) if (m := ((r.get("memory") or {}).get("method")))})
    verify = {name: load_json(p.dir / f) for name, f in (("onnxruntime FP32 vs PyTorch", "verify.json"),
                                                         ("onnxruntime FP16 vs FP32 (a sanity check: onnxruntime CPU computes FP16 regions in FP32, "
                                                          "so overflow shows only in the engine check)", "verify_fp16.json"),
                                                         ("TensorRT vs onnxruntime FP32", "verify_engine.json"))}
    source = state.get("source", {})
    artifacts = [f for f in ("model.safetensors", "isodeploy.json", "model.onnx", "model.fp16.onnx", "model.plan", "dense.onnx",
                             "uniform", "uniform.onnx", "standard.onnx", "bench.json", "latency_vs_macs.png", "triton") if (p.dir / f).exists()]
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
        "ratios": (bench or {}).get("ratios", []),
        "protocol": _protocol(bench),
        "memory_methods": memory_methods,
        "twin": twin,
        "standard": standard or None,
        "head_dim_flags": head_dim_flags,
        "plot": "latency_vs_macs.png" if (p.dir / "latency_vs_macs.png").is_file() else None,
        "machine": (bench or {}).get("env", {}),
        "stages": [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 2)} for r in stages.values()],
        "skipped": [{"stage": s, "why": why} for s, why in p.skipped],
        "exit_code": p.exit_code,
        "message": p.message,
        "artifacts": artifacts,
    }


def _recorded_detail(p, name: str) -> dict[str, Any]:
    rec = p.book.recorded(name) if hasattr(p.book, "recorded") else None
    return (rec or {}).get("detail", {}) if isinstance(rec, dict) else {}


def _protocol(bench: dict | None) -> dict[str, Any] | None:
    if not bench:
        return None
    s = bench.get("settings") or {}
    rounds = max((len((r.get("latency") or {}).get("rounds_ms") or []) for r in bench.get("results", [])), default=0)
    batches = sorted({r.get("batch") for r in bench.get("results", []) if r.get("batch")})
    return {"batches": batches, "warmup": s.get("warmup"), "iters": s.get("iters"), "rounds": rounds,
            "cpu_threads": s.get("threads"), "memory_repeats": s.get("memory_repeats"),
            "paper": "CPU batch 8, GPU batch 256, 20 warm-up + 100 timed steps"}


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
    lines += ["", "## Latency and memory: pruned vs uniform at the same MACs", ""]
    if data["latency"]:
        lines += _latency_section(data)
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


def _f(x: Any, fmt: str = ".2f") -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "-"


def _latency_section(data: dict[str, Any]) -> list[str]:
    from isodeploy.bench.ratios import METRICS, find

    machine = data["machine"]
    desc = machine.get("description") or f"{machine.get('cpu', 'CPU')} ({machine.get('cores', '?')} cores)"
    if machine.get("gpu"):
        desc += f" + {machine['gpu']}"
    proto = data.get("protocol") or {}
    lines = [f"Measured on {desc}. CPU figures are relative: compare the rows, not other machines.",
             f"Protocol: batch {', '.join(map(str, proto.get('batches') or [])) or '-'}, {proto.get('warmup')} warm-up + {proto.get('iters')} timed "
             f"steps per artifact in {proto.get('rounds')} interleaved rounds (A B C A B C …; the paper: {proto.get('paper')}).", ""]
    twin = data.get("twin")
    if twin:
        lines.append(f"Uniform twin: every class cut by one ratio ({twin['ratio']:.3f} removed, widths multiples of {twin.get('round_to', 8)}), "
                     f"{twin['macs'] / 1e9:.3f} GMACs vs the pruned {twin['target_macs'] / 1e9:.3f} G ({twin['mac_error']:+.2%})"
                     + (f"; head dims {sorted(set(twin['head_dims']))}" if twin.get("head_dims") else "")
                     + ("; the head count is kept: no shared cut of it landed within 1 %" if twin.get("heads_kept") else "") + ".")
    std = data.get("standard")
    if std and std.get("model"):
        lines.append(f"Standard model of about that size: `{std['model']}` ({std['macs'] / 1e9:.3f} GMACs).")
    lines += ["", "| artifact | role | runtime | device | batch | steps | p50 ms | ms / GMAC | CV | images/s | memory added MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["latency"]:
        cv = f"{r['cv']:.1%}" + (" (noisy)" if r.get("noisy") else "") if isinstance(r.get("cv"), float) else "-"
        steps = f"{r.get('warmup')} + {r.get('iters')}"
        lines.append(f"| {r['artifact']} | {r.get('role') or '-'} | {r.get('variant') or r['runtime']} | {r['device']} | {r['batch']} | {steps} | "
                     f"{_f(r['p50_ms'])} | {_f(r.get('ms_per_gmac'))} | {cv} | {_f(r['throughput_ips'], '.1f')} | {_f(r.get('peak_mb'), '.0f')} |")
    ratios = data.get("ratios") or []
    if ratios:
        lines += ["", "Ratios, per runtime: the median of per-round ratios with their min–max and IQR (memory: over the fresh-process repeats).", "",
                  "| ratio | runtime | device | metric | median | min–max | IQR | n |", "|---|---|---|---|---|---|---|---|"]
        for r in ratios:
            lines.append(f"| {r['numerator_role']} ÷ {r['denominator_role']} | {r['variant']} | {r['device']} | {METRICS.get(r['metric'], r['metric'])} | "
                         f"**{r['median']:.3f}×** | {r['low']:.3f}–{r['high']:.3f} | {r['q1']:.3f}–{r['q3']:.3f} | {r['n']} |")
        key = find(ratios, "latency_per_gmac", "pruned", "uniform-twin")
        mem = find(ratios, "peak_memory", "pruned", "uniform-twin")
        if key:
            verdict = "slower" if key["median"] > 1 else "faster"
            lines += ["", f"**Pruned vs uniform twin ({key['variant']}/{key['device']}):** latency per GMAC {key['median']:.3f}× "
                      f"(spread {key['low']:.3f}–{key['high']:.3f}): the non-uniform widths run {abs(key['median'] - 1):.1%} {verdict} per MAC than uniform ones"
                      + (f"; peak memory {mem['median']:.3f}× ({mem['low']:.3f}–{mem['high']:.3f})." if mem else ".")]
    flags = data.get("head_dim_flags") or {}
    for role, dims in flags.items():
        if dims:
            lines += ["", f"⚠ {role}: head dims {dims} are not multiples of 8: fused attention kernels (flash / memory-efficient SDPA, "
                      "TensorRT's fused MHA) need aligned head dims and fall back to slower unfused kernels, so latency per MAC suffers."]
    if data.get("memory_methods"):
        lines += ["", "Memory: " + " / ".join(data["memory_methods"]) + "."]
    if data.get("plot"):
        lines += ["", f"![latency vs MACs: pruned, uniform twin, dense]({data['plot']})"]
    return lines


def write_report(folder: Path, data: dict[str, Any]) -> None:
    write_json_atomic(folder / "report.json", data)
    write_text_atomic(folder / "report.md", render_markdown(data))
