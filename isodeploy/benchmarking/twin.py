"""The uniform twin of a pruned model: same depth, every class cut by one shared ratio, same MACs (±1 %).

Is a non-uniformly pruned model faster than a plain narrower model of the same cost? Answering that
needs the narrower model. The twin is made by the pruning engine itself — ``local`` ranking, one
ratio for every class, widths rounded to the hardware rules (multiples of 8, head dims ≥ 16; in a
ViT every block gets the same widths) — with the ratio bisected until the MACs land within 1 % of
the pruned model's (the same MAC formula as the pruned plan's). When timm has a standard model of
about that size (DeiT-S for DeiT-B pruned to 4.2 G), it is named too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from isodeploy.core.errors import IsodeployError

MAC_TOLERANCE = 0.01
#: dense timm model → standard timm models of smaller size, with their MACs at the default input size
#: (our counter: docs/bench.md); one is used when within STANDARD_TOLERANCE of the pruned MACs
KNOWN_STANDARD: dict[str, list[tuple[str, float]]] = {
    "deit_base_patch16_224": [("deit_small_patch16_224", 4.60e9), ("deit_tiny_patch16_224", 1.26e9)],
    "deit_small_patch16_224": [("deit_tiny_patch16_224", 1.26e9)],
    "vit_base_patch16_224": [("vit_small_patch16_224", 4.60e9), ("vit_tiny_patch16_224", 1.26e9)],
    "resnet50": [("resnet34", 3.67e9), ("resnet18", 1.82e9)],
    "resnet101": [("resnet50", 4.09e9), ("resnet34", 3.67e9)],
    "resnet152": [("resnet101", 7.8e9), ("resnet50", 4.09e9)],
}
STANDARD_TOLERANCE = 0.15


@dataclass
class TwinInfo:
    """What the twin is, for the report: its ratio, MACs against the target, widths per class."""

    target_macs: int
    macs: int
    params: int
    ratio: float  # the shared fraction removed from every class
    mac_error: float  # macs / target − 1
    round_to: int = 8  # the width multiple that landed within 1 %
    heads_kept: bool = False  # True when no shared ratio with a cut head count landed within 1 %
    classes: list[dict[str, Any]] = field(default_factory=list)
    head_dims: list[int] = field(default_factory=list)  # per block, for attention models

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def twin_config(target_macs: int, round_to: int = 8, keep_heads: bool = False):
    from isodeploy.pruning.plan import PruneConfig

    # ranking "local": every group removes the same fraction; ratio 0.5 is the starting point the
    # target search scales (one scale for every class, so the ratio stays shared).
    return PruneConfig(ratio=0.5, ranking="local", importance="magnitude", round_to=round_to, target_macs=float(target_macs),
                       head_ratio=0.0 if keep_heads else None)


#: widths are multiples of 8 when that lands within 1 %; a narrow class (ResNet's 64-channel stage) can make
#: every multiple of 8 miss, and then finer steps are tried — the report flags widths that are not aligned
ROUNDINGS = (8, 4, 2, 1)


def make_twin(dense: Any, target_macs: int, *, round_to: int = 8, progress: Any = None) -> tuple[Any, TwinInfo]:
    """(PruneResult of the twin, TwinInfo); one clear error when no shared ratio lands within 1 %."""
    from isodeploy.pruning.pruner import prune_model

    result, last, kept_heads = None, None, False
    # A model with few heads (3 per block) steps its head count by a third: when no shared ratio lands
    # within 1 %, the heads are kept and the one ratio cuts every other class (head dims included).
    attempts = [(step, False) for step in ROUNDINGS if step <= round_to] + [(step, True) for step in ROUNDINGS if step <= round_to]
    for step, keep_heads in attempts:
        try:
            result = prune_model(dense, twin_config(target_macs, step, keep_heads), progress=progress)
            kept_heads = keep_heads
            break
        except IsodeployError as exc:  # "unreachable": the rounding steps straddle the target
            last = exc
            if keep_heads is False and step == min(ROUNDINGS) and not _has_heads(dense):
                break
    if result is None:
        raise IsodeployError(f"no uniform twin of {dense.timm_name} within {MAC_TOLERANCE:.0%} of {target_macs / 1e9:.3g} GMACs: {last}")
    plan = result.plan
    error = plan.macs_after / target_macs - 1
    if abs(error) > MAC_TOLERANCE:
        raise IsodeployError(f"the uniform twin of {dense.timm_name} has {plan.macs_after / 1e9:.3g} GMACs, "
                             f"{error:+.1%} from the pruned model's {target_macs / 1e9:.3g} G (allowed ±{MAC_TOLERANCE:.0%})")
    classes = [asdict(c) for c in result.classes]
    info = TwinInfo(target_macs=int(target_macs), macs=int(plan.macs_after), params=int(plan.params_after),
                    ratio=round(0.5 * plan.scale, 6), mac_error=error, round_to=result.config.round_to,
                    classes=classes, head_dims=head_dims(classes), heads_kept=kept_heads)
    return result, info


def _has_heads(loaded: Any) -> bool:
    import torch

    return any(isinstance(m, torch.nn.MultiheadAttention) or hasattr(m, "num_heads") for m in loaded.model.modules())


def head_dims(classes: list[dict[str, Any]]) -> list[int]:
    """Per-block head dims of an attention model, from the class summaries (empty for CNNs)."""
    return [int(w) for c in classes if c.get("kind") == "head_dim" for w in c.get("widths_after", [])]


def misaligned_head_dims(classes: list[dict[str, Any]], multiple: int = 8) -> list[int]:
    """Head dims that are not a multiple of 8: fused attention (flash / memory-efficient SDPA, TensorRT's
    MHA kernels) needs them aligned and falls back to slower unfused kernels otherwise."""
    return sorted({d for d in head_dims(classes) if d % multiple})


def standard_model(dense_timm: str, target_macs: int, *, default_size: bool = True) -> tuple[str, float] | None:
    """A stock timm model of about ``target_macs`` (within 15 %), or None; only at the default input size."""
    if not default_size:
        return None
    best = None
    for name, macs in KNOWN_STANDARD.get(dense_timm, []):
        gap = abs(macs / target_macs - 1)
        if gap <= STANDARD_TOLERANCE and (best is None or gap < best[1]):
            best = (name, gap, macs)
    return (best[0], best[2]) if best else None


def dense_of_folder(folder: Any) -> tuple[Any, dict[str, Any]]:
    """(the dense :class:`~isodeploy.zoo.LoadedModel` a pruned folder was cut from, random weights;
    its spec), for a twin of any source kind (timm, torchvision, a factory the user trusts). A
    folder saved from a custom model without a source, or naming an untrusted factory, is one line."""
    from pathlib import Path

    from isodeploy.pruning.spec import read_spec, source_of_spec
    from isodeploy.loading import load_model
    from isodeploy.zoo.sources import is_trusted

    folder = Path(folder)
    spec = read_spec(folder)
    source = source_of_spec(spec, folder / "isodeploy.json")
    if source.kind == "none":
        raise IsodeployError(f"--uniform-twin cannot rebuild the dense model of '{folder}': it was saved from a custom "
                             "model without a source (save it with isodeploy.save(result, folder, source=...))")
    if source.kind == "factory" and not is_trusted(source.name):
        raise IsodeployError(f"'{folder}' names the factory '{source.name}', and a folder is not trusted to choose code "
                             f"to import; pass isodeploy --trust-factory {source.name} compare …")
    macs = spec.get("macs", {}).get("after") if isinstance(spec.get("macs"), dict) else None
    if not isinstance(macs, int) or isinstance(macs, bool) or macs <= 0:
        raise IsodeployError(f"'{folder}' records no pruned MACs (macs.after); re-run 'isodeploy prune'")
    kwargs = dict(source.kwargs)
    size = kwargs.pop("img_size", None)
    input_size = spec["source"].get("input_size")
    if size is None and isinstance(input_size, list):
        size = input_size[1]
    return load_model(source.label, weights="random", img_size=size, **kwargs), spec
