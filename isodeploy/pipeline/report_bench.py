"""The latency-and-memory section of a ``prune-export`` report: tables, intervals, and a verdict that follows them.

The verdict sentence is written from the headline ratio's 95 % interval, never from its point value:
an interval that contains 1.0 reads "no measurable difference", so a noisy run cannot state a finding.
"""

from __future__ import annotations

from typing import Any

HEADLINE = ("latency_per_gmac", "pruned", "uniform-twin")  # the comparison the tool exists for: equal MACs, other widths


def _f(x: Any, fmt: str = ".2f") -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "-"


def headline_verdict(ratios: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The machine-readable verdict of pruned ÷ uniform twin per GMAC (the first runtime that has it)."""
    from isodeploy.benchmarking.ratios import RatioFigure, find

    key = find(ratios, *HEADLINE)
    if not key or "value" not in key:
        return None
    fig = RatioFigure(**key)
    return {"ratio": "pruned ÷ uniform-twin, latency per GMAC", "runtime": fig.variant, "device": fig.device, "value": fig.value,
            "ci_low": fig.ci_low, "ci_high": fig.ci_high, "confidence": fig.confidence, "n": fig.n, "method": fig.method,
            "verdict": fig.verdict, "sentence": fig.sentence()}


def _machine_line(data: dict[str, Any]) -> str:
    machine = data["machine"]
    desc = machine.get("description") or f"{machine.get('cpu', 'CPU')} ({machine.get('cores', '?')} cores)"
    if machine.get("gpu"):
        desc += f" + {machine['gpu']}"
    return f"Measured on {desc}. CPU figures are relative: compare the rows, not other machines."


def _protocol_lines(data: dict[str, Any]) -> list[str]:
    proto = data.get("protocol") or {}
    batches = ", ".join(map(str, proto.get("batches") or [])) or "-"
    if proto.get("description"):
        line = f"Protocol: batch {batches}; {proto['description']}."
    else:  # a bench.json of an older isodeploy
        line = f"Protocol: batch {batches}, {proto.get('warmup')} warm-up + {proto.get('iters')} timed steps in {proto.get('rounds')} rounds."
    stop = proto.get("stop") or {}
    if stop:
        why = {"converged": "every headline interval reached its target", "budget": "the time budget was spent",
               "max rounds": "the round limit was reached", "fixed": "the fixed step counts were done"}.get(stop.get("reason"), stop.get("reason"))
        line += f" Timing stopped after {stop.get('rounds')} rounds ({_f(stop.get('elapsed_s'), '.0f')} s): {why}."
    lines = [line, f"The paper's protocol ({proto.get('paper')}) is one flag away."]
    load = data.get("load") or {}
    if load:
        from isodeploy.benchmarking.loadwatch import MachineLoad

        ml = MachineLoad(**{k: load.get(k) for k in ("load_before", "load_after", "other_cores", "cores", "busy")})
        lines.append(("⚠ **The machine was busy while timing**: " if ml.busy else "Machine load: ") + ml.describe()
                     + (" — the intervals are wider for it; re-run on an idle machine." if ml.busy else "."))
    return lines


def _results_table(data: dict[str, Any]) -> list[str]:
    lines = ["| artifact | role | runtime | device | batch | warm-up + timed steps (rounds) | p50 ms | ms / GMAC | CV | images/s | memory added MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["latency"]:
        cv = f"{r['cv']:.1%}" if isinstance(r.get("cv"), float) else "-"
        steps = f"{r.get('warmup')} + {r.get('iters')} ({r.get('rounds')})"
        lines.append(f"| {r['artifact']} | {r.get('role') or '-'} | {r.get('variant') or r['runtime']} | {r['device']} | {r['batch']} | {steps} | "
                     f"{_f(r['p50_ms'])} | {_f(r.get('ms_per_gmac'))} | {cv} | {_f(r['throughput_ips'], '.1f')} | {_f(r.get('peak_mb'), '.0f')} |")
    return lines


def _ratio_table(ratios: list[dict[str, Any]]) -> list[str]:
    from isodeploy.benchmarking.ratios import METRICS

    lines = ["Ratios, per runtime: the Hodges–Lehmann estimate over paired rounds with its 95 % interval (Wilcoxon signed-rank; "
             "memory: over the fresh-process probes). The verdict follows the interval.", "",
             "| ratio | runtime | device | metric | value | 95 % CI | verdict | n |", "|---|---|---|---|---|---|---|---|"]
    for r in ratios:
        value = r.get("value", r.get("median"))
        decided = (r.get("confidence") or 0) >= 0.95 - 1e-9
        ci = f"{r['ci_low']:.3f}–{r['ci_high']:.3f}" if decided else "-"
        lines.append(f"| {r['numerator_role']} ÷ {r['denominator_role']} | {r['variant']} | {r['device']} | {METRICS.get(r['metric'], r['metric'])} | "
                     f"**{_f(value, '.3f')}×** | {ci} | {r.get('verdict') or '-'} | {r['n']} |")
    return lines


def _twin_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    twin = data.get("twin")
    if twin:
        lines.append(f"Uniform twin: every class cut by one ratio ({twin['ratio']:.3f} removed, widths multiples of {twin.get('round_to', 8)}), "
                     f"{twin['macs'] / 1e9:.3f} GMACs vs the pruned {twin['target_macs'] / 1e9:.3f} G ({twin['mac_error']:+.2%})"
                     + (f"; head dims {sorted(set(twin['head_dims']))}" if twin.get("head_dims") else "")
                     + ("; the head count is kept: no shared cut of it landed within 1 %" if twin.get("heads_kept") else "")
                     + ". Its per-class widths stand beside the pruned ones in the Pruning table.")
    std = data.get("standard")
    if std and std.get("model"):
        lines.append(f"Standard model of about that size: `{std['model']}` ({std['macs'] / 1e9:.3f} GMACs).")
    return lines


def latency_section(data: dict[str, Any]) -> list[str]:
    lines = [_machine_line(data)] + _protocol_lines(data) + [""] + _twin_lines(data) + [""] + _results_table(data)
    ratios = data.get("ratios") or []
    if ratios:
        lines += [""] + _ratio_table(ratios)
    verdict = data.get("verdict")
    if verdict:
        from isodeploy.benchmarking.ratios import RatioFigure, find

        mem = find(ratios, "peak_memory", "pruned", "uniform-twin")
        mem_text = ""
        if mem:
            fig = RatioFigure(**mem)
            mem_text = f"; peak memory {fig.describe()}"
        lines += ["", f"**Pruned vs uniform twin ({verdict['runtime']}/{verdict['device']}), latency per GMAC:** the non-uniform widths "
                  f"{'run' if verdict['verdict'] in ('faster', 'slower') else 'show'} {verdict['sentence']}{mem_text}."]
    flags = data.get("head_dim_flags") or {}
    for role, dims in flags.items():
        if dims:
            lines += ["", f"⚠ {role}: head dims {dims} are not multiples of 8: fused attention kernels (flash / memory-efficient SDPA, "
                      "TensorRT's fused MHA) need aligned head dims and fall back to slower unfused kernels, so latency per MAC suffers."]
    if data.get("memory_methods"):
        lines += ["", "Memory: " + " / ".join(data["memory_methods"]) + "."]
    if data.get("plot"):
        lines += ["", f"![latency per GMAC vs MACs, with 95 % intervals: pruned, uniform twin, dense, standard]({data['plot']})"]
    return lines
