"""Coverage of the whole prune → forward → ONNX → onnxruntime path over timm families and torchvision's
classification zoo, side by side with Torch-Pruning 1.6 on the same models, in one run.

For every model (random weights, a small input where the model allows it): isodeploy prunes ratio
0.3 on every class through the public API, the pruned model runs, exports to ONNX and matches
onnxruntime; "pass" also needs a real reduction (MACs ≤ 90 % of dense) when anything is prunable.
Torch-Pruning's MetaPruner (magnitude, ratio 0.3, classifier ignored, isomorphic=True) runs on the
same model; "pass" = it prunes without raising and the model still runs. Each model runs in its own
subprocess with a timeout, so a crash or a hang is a row, not the end of the run.

    python benchmarks/coverage.py [--suite timm|torchvision|hf|all] [--only NAME,...] [--no-tp] [--json out.json [--resume]] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# A broad sample of current timm families, by construct: attention variants, MLP-only, pooling and
# conv token mixers, re-parameterisable and hybrid CNN-transformers, and classic CNNs.
TIMM = [
    # plain / class / cross-covariance / talking-heads attention
    "deit_tiny_patch16_224", "vit_small_patch16_224", "cait_xxs24_224", "xcit_nano_12_p16_224", "convit_tiny",
    "beit_base_patch16_224", "eva02_tiny_patch14_224", "flexivit_small", "deit3_small_patch16_224",
    # windowed / pooled / sub-sampled keys / convolutional position encodings
    "swin_tiny_patch4_window7_224", "swinv2_tiny_window8_256", "pit_ti_224", "pvt_v2_b0", "twins_pcpvt_small",
    "twins_svt_small", "coat_lite_tiny", "crossvit_tiny_240", "nest_tiny", "gcvit_xxtiny", "davit_tiny", "maxvit_nano_rw_256",
    "tnt_s_patch16_224", "visformer_tiny", "volo_d1_224", "levit_128s", "hiera_tiny_224",
    # MLP-only and pooling / conv token mixers
    "mixer_s16_224", "resmlp_12_224", "gmlp_ti16_224", "poolformer_s12", "poolformerv2_s12", "convformer_s18",
    "caformer_s18", "focalnet_tiny_srf", "inception_next_tiny", "mambaout_femto",
    # hybrids and re-parameterisable
    "mobilevit_xxs", "mobilevitv2_050", "efficientformer_l1", "efficientformerv2_s0", "edgenext_xx_small",
    "tiny_vit_5m_224", "fastvit_t8", "repvit_m0_9", "mobileone_s0", "repvgg_a0", "coatnet_nano_rw_224",
    # CNNs
    "resnet18", "resnet50", "resnext26ts", "convnext_atto", "convnextv2_atto", "mobilenetv2_050", "mobilenetv3_small_050",
    "efficientnet_b0", "regnety_002", "ghostnet_100", "densenet121", "dla34", "hrnet_w18_small", "rexnet_100",
    "dpn68", "res2net50_14w_8s", "resnest14d", "cspresnet50", "nf_resnet26", "resnetv2_50x1_bit", "halonet26t", "botnet26t_256",
    "lambda_resnet26t", "selecsls42b", "ese_vovnet19b_dw", "hgnetv2_b0", "starnet_s1", "inception_v3", "xception41",
]
SMALL = 64  # input side used where a model takes any size (or an img_size argument)
TIMEOUT_S = {"isodeploy": 900, "tp": 240}  # Torch-Pruning can spin for minutes on a model it can't handle

WORKER = r"""
import json, sys, time, traceback, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(2)
which, suite, name = sys.argv[1], sys.argv[2], sys.argv[3]
out = {"model": name, "suite": suite, "tool": which}

def build():
    if suite == "timm":
        import timm
        for size in (SMALL, None):
            try:
                kw = {"img_size": size} if size else {}
                m = timm.create_model(name, pretrained=False, **kw).eval()
                cfg = m.pretrained_cfg.get("input_size", (3, 224, 224))
                x = torch.randn(2, cfg[0], size or cfg[1], size or cfg[2])
                with torch.no_grad():
                    m(x)
                return m, x
            except Exception:
                continue
        m = timm.create_model(name, pretrained=False).eval()
        cfg = m.pretrained_cfg.get("input_size", (3, 224, 224))
        return m, torch.randn(2, *cfg)
    if suite == "hf":  # transformers: the default config, shrunk where the config allows (fewer blocks, small input)
        import isodeploy
        from transformers import AutoConfig
        cfg = AutoConfig.for_model(name)
        shrink = {}
        if isinstance(getattr(cfg, "num_hidden_layers", None), int) and cfg.num_hidden_layers > 2:
            shrink["num_hidden_layers"] = 2
        if isinstance(getattr(cfg, "depths", None), list):
            shrink["depths"] = [min(d, 2) if isinstance(d, int) else d for d in cfg.depths]
        from isodeploy.zoo.hf import build as hf_build
        try:
            with torch.device("meta"):  # count first: an LLM-sized default config is not built on a CPU box
                billions = sum(p.numel() for p in hf_build(name, {}, False).parameters()) / 1e9
        except Exception:
            billions = 0.0  # not buildable on meta: the real build below decides
        if billions > 1.0:
            raise RuntimeError(f"its default config has {billions:.1f} B parameters (a multimodal LLM), too large for this run")
        sized = isinstance(getattr(cfg, "image_size", None), int)
        for kw in ([dict(shrink, image_size=SMALL)] if sized else []) + [shrink, {}]:
            try:
                m = isodeploy.create_model("hf:" + name, weights="random", **kw).eval()
                x = torch.randn(2, *m.pretrained_cfg["input_size"])
                with torch.no_grad():
                    m(x)
                out["config"] = kw
                return m, x
            except Exception:
                continue
        raise RuntimeError("no config worked")
    import torchvision
    builder = torchvision.models.get_model_builder(name)
    for size in (SMALL, 224 if "inception" not in name else 299):
        try:
            kw = {"image_size": size} if name.startswith("vit_") else {}
            m = builder(weights=None, **kw).eval()
            x = torch.randn(2, 3, size, size)
            with torch.no_grad():
                m(x)
            return m, x
        except Exception:
            continue
    raise RuntimeError("no input size worked")

torch.manual_seed(0)
try:
    model, x = build()
except Exception as exc:
    out.update(status="skip", why=f"cannot build: {type(exc).__name__}: {str(exc)[:120]}")
    print(json.dumps(out)); sys.exit(0)
out["input"] = list(x.shape[1:])
t0 = time.perf_counter()
try:
    if which == "isodeploy":
        import isodeploy
        from isodeploy.benchmarking.macs import count_macs
        result = isodeploy.prune(model, x, ratio=0.3)
        pruned = result.model
        with torch.no_grad():
            y = pruned(x)
        dense_macs = result.plan.macs_before
        kept = result.plan.macs_after / dense_macs if dense_macs else 1.0
        bench_macs = count_macs(pruned, x).macs
        out.update(macs_kept=round(kept, 4), planner_eq_bench=bench_macs == result.plan.macs_after,
                   bench_macs=bench_macs, planner_macs=result.plan.macs_after,
                   prunable=bool(result.grouping.groups), frozen=[f"{f.kind}: {f.reason[:140]}" for f in result.frozen],
                   unsupported=sorted({u.op for u in result.grouping.unsupported}), prune_s=round(time.perf_counter() - t0, 2))
        import tempfile, numpy as np, onnxruntime as ort
        with tempfile.TemporaryDirectory() as tmp:
            isodeploy.export_onnx(pruned, f"{tmp}/m.onnx", example_inputs=x)
            sess = ort.InferenceSession(f"{tmp}/m.onnx", providers=["CPUExecutionProvider"])
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        ref = y[0] if isinstance(y, (tuple, list)) else y
        err = float(np.abs(got - ref.numpy()).max())
        scale = float(np.abs(ref.numpy()).max()) or 1.0
        out["onnx_max_err"] = err
        ok_numerics = err <= 1e-3 * max(1.0, scale)
        reduced = kept <= 0.9 or not out["prunable"]
        out["status"] = "pass" if ok_numerics and reduced else "fail"
        if not ok_numerics:
            out["why"] = f"onnxruntime differs by {err:.2e}"
        elif not reduced:
            out["why"] = f"MACs kept {kept:.0%} > 90%"
    else:
        import torch_pruning as tp
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
        imp = tp.importance.GroupMagnitudeImportance(p=2)
        base, _ = tp.utils.count_ops_and_params(model, x[:1])
        pruner = tp.pruner.MetaPruner(model, x[:1], importance=imp, pruning_ratio=0.3, ignored_layers=head, isomorphic=True, global_pruning=True)
        pruner.step()
        with torch.no_grad():
            model(x)
        after, _ = tp.utils.count_ops_and_params(model, x[:1])
        out.update(status="pass", macs_kept=round(after / base, 4) if base else None, prune_s=round(time.perf_counter() - t0, 2))
except Exception as exc:
    tb = traceback.extract_tb(exc.__traceback__)[-1]
    out.update(status="fail", why=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:140] if str(exc).strip() else ''}",
               where=f"{tb.filename.rsplit('/', 1)[-1]}:{tb.lineno}", traceback=which == "isodeploy" and not type(exc).__name__.endswith("IsodeployError"))
print(json.dumps(out))
""".replace("SMALL", str(SMALL))


def run_one(tool: str, suite: str, name: str) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", WORKER, tool, suite, name], capture_output=True, text=True, timeout=TIMEOUT_S[tool],
                              env=dict(os.environ, PYTHONWARNINGS="ignore"))
    except subprocess.TimeoutExpired:
        return {"model": name, "suite": suite, "tool": tool, "status": "fail", "why": f"timeout after {TIMEOUT_S[tool]} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": name, "suite": suite, "tool": tool, "status": "fail", "why": f"worker died (rc {proc.returncode}): {tail[:140]}"}
    row = json.loads(lines[-1])
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def torchvision_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def table(rows: list[dict], suite: str) -> str:
    by = {}
    for r in rows:
        if r["suite"] == suite:
            by.setdefault(r["model"], {})[r["tool"]] = r
    lines = [f"### {suite}", "", "| model | isodeploy | MACs kept | frozen / why | Torch-Pruning 1.6 | TP MACs kept |", "|---|---|---|---|---|---|"]
    for name, tools in by.items():
        ours, tp = tools.get("isodeploy", {}), tools.get("tp", {})
        why = ours.get("why") or "; ".join(ours.get("frozen", [])[:2]) or ("-" if ours.get("prunable", True) else "nothing prunable")
        kept = ours.get("macs_kept")
        tp_kept = tp.get("macs_kept")
        lines.append(f"| {name} | {ours.get('status', '-')} | {'-' if kept is None else f'{kept:.0%}'} | {why.replace('|', '/')[:160]} | "
                     f"{tp.get('status', '-')}{(': ' + tp['why'][:60].replace('|', '/')) if tp.get('why') else ''} | "
                     f"{'-' if tp_kept is None else f'{tp_kept:.0%}'} |")
    counted = [t for t in by.values() if t.get("isodeploy", {}).get("status") in ("pass", "fail")]
    passed = sum(t["isodeploy"]["status"] == "pass" for t in counted)
    tp_counted = [t for t in by.values() if t.get("tp", {}).get("status") in ("pass", "fail")]
    tp_passed = sum(t["tp"]["status"] == "pass" for t in tp_counted)
    tracebacks = sum(bool(t.get("isodeploy", {}).get("traceback")) for t in by.values())
    eq = [t["isodeploy"].get("planner_eq_bench") for t in counted if "planner_eq_bench" in t["isodeploy"]]
    lines += ["", f"isodeploy: {passed}/{len(counted)} pass ({passed / max(1, len(counted)):.0%}), {tracebacks} tracebacks, "
              f"planner MACs = bench MACs on {sum(map(bool, eq))}/{len(eq)}; "
              f"Torch-Pruning 1.6: {tp_passed}/{len(tp_counted)} prune and run ({tp_passed / max(1, len(tp_counted)):.0%})", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("timm", "torchvision", "hf", "all"), default="all",
                        help="all = timm + torchvision; hf = every transformers image-classification model type (pip install -e '.[hf]')")
    parser.add_argument("--only", default=None, help="comma-separated model names")
    parser.add_argument("--no-tp", action="store_true", help="skip Torch-Pruning")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --json and run the rest")
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("--tables-from", type=Path, nargs="+", default=None, help="print the tables of saved --json runs, run nothing")
    args = parser.parse_args()
    if args.tables_from:
        rows = [r for f in args.tables_from for r in json.loads(f.read_text())]
        text = "\n".join(table(rows, s) for s in ("timm", "torchvision", "hf") if any(r["suite"] == s for r in rows))
        print(text)
        if args.md:
            args.md.write_text(text + "\n")
        return
    jobs = []
    if args.suite in ("timm", "all"):
        jobs += [("timm", n) for n in TIMM]
    if args.suite in ("torchvision", "all"):
        jobs += [("torchvision", n) for n in torchvision_models()]
    if args.suite == "hf":
        from isodeploy.zoo.hf import model_types

        jobs += [("hf", n) for n in model_types()]
    if args.only:
        wanted = [n for n in args.only.split(",") if n]
        missing = [n for n in wanted if n not in {j[1] for j in jobs}]
        jobs = [j for j in jobs if j[1] in set(wanted)]
        if missing and args.suite in ("timm", "all"):  # any timm name may be asked for, not only the sample's
            jobs += [("timm", n) for n in missing]
        elif missing:
            sys.exit(f"error: --only names {', '.join(missing)}, not in the {args.suite} suite")
    rows: list[dict] = []
    if args.resume and args.json and args.json.is_file():  # a long run picks up where it stopped
        rows = [r for r in json.loads(args.json.read_text()) if r.get("suite") in {s for s, _ in jobs}]
    done = {(r["suite"], r["model"], r["tool"]) for r in rows}
    for i, (suite, name) in enumerate(jobs, 1):
        for tool in ("isodeploy",) + (() if args.no_tp else ("tp",)):
            if (suite, name, tool) in done:
                continue
            row = run_one(tool, suite, name)
            rows.append(row)
            print(f"[{i}/{len(jobs)}] {suite}:{name} {tool}: {row['status']} {row.get('macs_kept', '')} {row.get('why', '')[:100]}",
                  file=sys.stderr, flush=True)
            if args.json:  # keep partial results: the run is long
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1))
    text = "\n".join(table(rows, s) for s in ("timm", "torchvision", "hf") if any(r["suite"] == s for r in rows))
    print(text)
    if args.md:
        args.md.write_text(text + "\n")


if __name__ == "__main__":
    main()
