"""What ``isodeploy prune MODEL -o DIR`` does, as one Python call: :func:`prune_to_folder`.

Checks everything that can be checked before the model is built (the output folder, the report
path, the ratios), then creates, prunes and saves; the command line only adds its progress line and
summary table. :func:`print_summary` (the command's table, from :mod:`isodeploy.pruning.report`) is
re-exported for callers who want the same table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from isodeploy.api.files import Warn, check_report_paths, warn_python, write_json_atomic
from isodeploy.api.model_args import model_argument_warnings, model_folder
from isodeploy.api.models import RATIO_KINDS, create_model, default_preset, example_inputs, prune, prune_config, save
from isodeploy.core.errors import IsodeployError, ParameterError
from isodeploy.pruning.report import print_summary

__all__ = ["PruneRun", "parse_macs", "print_summary", "prune_to_folder"]


@dataclass
class PruneRun:
    """What :func:`prune_to_folder` did: the :class:`~isodeploy.pruning.pruner.PruneResult`, the folder
    it wrote, and advisory lines about options that changed nothing (the CLI prints them as warnings)."""

    result: Any
    output: Path
    notes: list[str] = field(default_factory=list)

    @property
    def report(self) -> dict[str, Any]:
        """The ``--json`` report: the spec without its per-group list, plus the output folder."""
        return {k: v for k, v in self.result.spec.items() if k != "groups"} | {"output": str(self.output)}


def parse_macs(text: str | float | None) -> float | None:
    """'4.2G', '600M', '4.2e9' (or a number) → MACs per image."""
    if text is None or (isinstance(text, (int, float)) and not isinstance(text, bool)):
        return None if text is None else _finite_macs(float(text), text)
    units = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
    value = str(text).strip().lower()
    try:
        number = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError as exc:
        raise IsodeployError(f"--target-macs takes a number with an optional unit, e.g. 4.2G or 600M; got '{text}'") from exc
    return _finite_macs(number, text)


def _finite_macs(number: float, text: Any) -> float:
    if not math.isfinite(number):
        raise IsodeployError(f"--target-macs must be a finite number, e.g. 4.2G; got '{text}'")
    return number


def prune_to_folder(model: str, output: str | Path, *, preset: str | None = None, ratio: float | None = None,
                    embed_ratio: float | None = None, mlp_ratio: float | None = None, head_ratio: float | None = None,
                    head_dim_ratio: float | None = None, ranking: str = "isomorphic", importance: str = "magnitude",
                    norm: str = "l2", calib_data: str | None = None, calib_batches: int = 8, round_to: int = 8,
                    target_macs: str | float | None = None, max_group_ratio: float = 0.9, weights: str = "pretrained",
                    img_size: int | None = None, strict: bool = False, force: bool = False, json_path: str | Path | None = None,
                    progress: Callable[[str], None] | None = None, warn: Warn = warn_python, target_latency: str | float | None = None,
                    latency_table: str | Path | None = None, latency_runtime: str = "ort", bench_batch: int | None = None,
                    threads: int | None = None) -> PruneRun:
    """Prune the model MODEL names and write a folder every command (and :func:`~isodeploy.api.load`) accepts.

    The defaults are the ``isodeploy prune`` command's. Without ``preset`` an alias uses its own recipe
    (``deit_b`` → ``deit-4.2g``); explicit ratios replace it. ``target_macs`` takes ``'4.2G'`` or a number.
    ``output`` (and ``json_path``) are checked before the model is built, so a bad folder fails in
    seconds; ``json_path`` also gets :attr:`PruneRun.report`. ``progress`` gets status lines, ``warn``
    advisory lines said before the work (a :class:`UserWarning` by default).

    ``target_latency`` (``'300ms'`` or ``0.5`` × dense) prunes to a measured latency on ``latency_runtime``
    (``ort`` CPU, or ``trt`` FP16 on a GPU) at ``bench_batch``/``threads``; ``latency_table`` names a
    table file to reuse or write (see :func:`~isodeploy.api.latency_settings`).
    """
    from isodeploy.core.artifacts import legacy_entries
    from isodeploy.core.output_folder import probe_output_folder

    output = Path(output)
    # -o is checked before the long work (the write re-checks under the folder's lock)
    probe_output_folder(output, adopt=legacy_entries, input_folder=model_folder(model))
    check_report_paths({"--json": json_path}, inputs=[model, weights], folders=[(output, ("model.safetensors", "isodeploy.json"))])
    for line in model_argument_warnings(model, weights, img_size):
        warn(line)
    if calib_data is not None and importance != "taylor":
        warn(f"--calib-data is ignored: only --importance taylor uses calibration images (this run: {importance})")
    explicit = dict(ratio=ratio, embed_ratio=embed_ratio, mlp_ratio=mlp_ratio, head_ratio=head_ratio, head_dim_ratio=head_dim_ratio)
    latency = None
    if target_latency is not None:
        from isodeploy.latency.settings import make_settings, refuse_explicit_cuts

        latency = make_settings(target_latency, latency_table=latency_table, runtime=latency_runtime, batch=bench_batch, threads=threads)
        refuse_explicit_cuts([f"--{k.replace('_', '-')}" for k, v in (("preset", preset), *explicit.items()) if v is not None])
    elif latency_table is not None or bench_batch is not None or threads is not None or latency_runtime != "ort":
        warn("--latency-table, --bench-batch, --threads and --latency-runtime are ignored without --target-latency")
    recipe = None if latency else (preset or default_preset(model))
    if preset is None and any(v is not None for v in explicit.values()):
        recipe = None  # explicit ratios replace the alias's default recipe
    ratios = {kind: explicit[f] for kind, f in RATIO_KINDS.items() if explicit[f] is not None}
    if recipe is None and ratio is None and not ratios and target_macs is None and latency is None:
        raise IsodeployError(f"no ratios for '{model}': pass --preset, --ratio or --target-macs (see 'isodeploy presets')")
    options = dict(ratio=ratio, ratios=ratios, preset=recipe, ranking=ranking, importance=importance, norm=norm, round_to=round_to,
                   max_group_ratio=max_group_ratio, target_macs=parse_macs(target_macs))
    _check_options({**options, "target_latency": latency.budget.text if latency else None})  # bad options fail here, before the model is built
    say = progress or (lambda message: None)
    say(f"loading {model}")
    dense = create_model(model, weights=weights, img_size=img_size)
    result = prune(dense, example_inputs(dense), **options, calib_data=calib_data or "synthetic", calib_batches=calib_batches,
                   strict=strict, progress=say, latency=latency)
    say(f"writing {output}")
    save(result, output, force=force)
    run = PruneRun(result, output, _unrounded(result, round_to) + _unused_kind_ratios(result, ratios))
    if json_path:
        write_json_atomic(Path(json_path), run.report)
    return run


def _check_options(options: dict[str, Any]) -> None:
    """:func:`~isodeploy.api.prune_config`, naming a per-kind ratio as this function's parameter
    (``embed_ratio=``; the CLI: ``--embed-ratio``) instead of ``ratios['embedding']=``."""
    try:
        prune_config(**options)
    except ParameterError as exc:
        kind = next((k for k in RATIO_KINDS if exc.param == f"ratios['{k}']"), None)
        if kind is None:
            raise
        raise ParameterError(RATIO_KINDS[kind], str(exc)[len(exc.param) + 2:], exc.exit_code) from None


def _unused_kind_ratios(result, ratios: dict[str, float]) -> list[str]:
    """``head_ratio`` on a CNN (no class of that kind) changed nothing: say so instead of silence."""
    kinds = {c.get("kind") for c in result.spec.get("classes", []) if isinstance(c, dict)}
    return [f"--{RATIO_KINDS[kind].replace('_', '-')} ignored: the model has no '{kind}' class "
            f"(its classes: {', '.join(sorted(k for k in kinds if k)) or 'none'})" for kind in sorted(set(ratios) - kinds)]


def _unrounded(result, round_to: int) -> list[str]:
    """``round_to`` larger than (or dividing none of) the kept widths rounds nothing: say so."""
    if round_to <= 1:
        return []
    kept = [g.get("kept_width") for g in result.spec.get("groups", []) if isinstance(g, dict) and g.get("kept_width") != g.get("width")]
    kept = [k for k in kept if isinstance(k, int)]
    if kept and not any(k % round_to == 0 for k in kept):
        return [f"--round-to {round_to} divides none of the pruned widths (largest kept: {max(kept)}); nothing was rounded: "
                "use a smaller --round-to, e.g. 8"]
    return []
