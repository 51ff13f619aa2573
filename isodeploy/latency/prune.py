"""The latency-budget prune as one call, with its measured check and the report it leaves in the spec."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import torch

from isodeploy.benchmarking.protocol import Protocol
from isodeploy.core.errors import IsodeployError, ParameterError
from isodeploy.latency.measure import measurer_factory
from isodeploy.latency.search import TOLERANCE, TableUse, _State, planner_for
from isodeploy.latency.settings import LatencySettings
from isodeploy.pruning.plan import PruneConfig
from isodeploy.pruning.pruner import PruneResult, example_batch, prune_module

SOLVER = "multiple-choice knapsack, exact dynamic programming over latency saved (1/2000 of dense)"


@dataclass
class Attempt:
    """One solve + prune + measurement."""

    target_ratio: float
    predicted_ratio: float
    measured_ratio: dict[str, Any]  # an Interval's dict: pruned ÷ dense, paired rounds
    measured_ms: dict[str, Any]
    dense_ms: dict[str, Any]
    budget_error: float  # measured ÷ budget − 1, in the budget's own terms (ms or fraction)
    prediction_error: float  # measured ÷ predicted − 1
    macs_after: int
    params_after: int
    rounds: int
    stop: str
    budget_ratio: float  # the budget as a fraction of this measurement's dense latency
    load: dict[str, Any] = field(default_factory=dict)  # the machine's load while this check was timed
    classes: list[dict[str, Any]] = field(default_factory=list)


def _measure(state: _State, result: PruneResult) -> Attempt:
    settings, measurer = state.settings, state.measurer
    decision = state.decision(result.plan)
    state.say(f"latency check: timing the pruned model against the dense one (adaptive, ≤ {settings.check_budget_s:g} s)")
    from isodeploy.benchmarking.loadwatch import LoadWatch

    entry = measurer.open(result.model, "pruned")
    watch = LoadWatch()
    try:
        paired = measurer.pair(entry, Protocol(name="adaptive", budget_s=settings.check_budget_s, target=0.02))
    finally:
        measurer.release(entry)
    load = watch.stop()
    budget = settings.budget
    measured = paired.ratio.value
    error = paired.variant_ms.value / budget.ms - 1 if budget.ms is not None else measured / budget.fraction - 1
    target_now = budget.ms / paired.dense_ms.value if budget.ms is not None else budget.fraction
    attempt = Attempt(target_ratio=state.target, predicted_ratio=decision.predicted, measured_ratio=paired.ratio.to_dict(),
                      measured_ms=paired.variant_ms.to_dict(), dense_ms=paired.dense_ms.to_dict(), budget_error=error,
                      prediction_error=measured / decision.predicted - 1, macs_after=result.plan.macs_after,
                      params_after=result.plan.params_after, rounds=paired.rounds, stop=paired.stop, budget_ratio=target_now,
                      load=load.to_dict(), classes=[o.to_dict() for o in decision.chosen.values()])
    if load.busy:
        state.say(f"warning: the machine was busy during the latency check ({load.describe()}); the measurement may be off")
    state.say(f"latency check: {paired.variant_ms.value:.4g} ms = {measured:.3f}× dense (95 % CI {paired.ratio.ci_low:.3f}–"
              f"{paired.ratio.ci_high:.3f}); budget {budget.describe(paired.dense_ms.value)}, off by {error:+.1%}; "
              f"predicted {decision.predicted:.3f}× ({attempt.prediction_error:+.1%})")
    return attempt


def prune_to_latency(model: torch.nn.Module, example: Any, cfg: PruneConfig, settings: LatencySettings, *,
                     importance: Any = None, data: Iterable | None = None, strict: bool = False,
                     progress: Callable[[str], None] | None = None, name: str | None = None,
                     input_meta: dict[str, Any] | None = None, verify: bool = True) -> PruneResult:
    """Prune a copy of ``model`` so that it runs within ``settings.budget`` on the settings' runtime, measured."""
    say = progress or (lambda _m: None)
    if cfg.ranking != "isomorphic":
        raise ParameterError("ranking", f"must be isomorphic with target_latency (the solver chooses each class's cut; got '{cfg.ranking}')")
    ex = example_batch(example)
    timing_example = ex[:1].expand(settings.batch, *ex.shape[1:]).contiguous()
    make = settings.measurer or measurer_factory(settings.runtime, settings.device, settings.threads, settings.work_dir,
                                                   settings.step_budget_s)
    say(f"latency: exporting the dense model for {settings.runtime} (batch {settings.batch})")
    measurer = make(model, timing_example)
    try:
        if settings.budget.ms is not None:
            settings.budget.fraction_of(measurer.quick_dense_ms())  # a time at or above the dense latency: refused now
        state = _State(settings, measurer, say, model)
        source = getattr(model, "_isodeploy_source", None)
        name = name or getattr(source, "name", None) or type(model).__name__
        planner = planner_for(state, name, ex)

        def run() -> PruneResult:
            return prune_module(model, ex, cfg, importance=importance, data=data, strict=strict, progress=progress, name=name,
                                input_meta=input_meta, verify=verify, planner=planner)

        result = run()
        attempts = [_measure(state, result)]
        chosen, correction = attempts[0], None
        if abs(chosen.budget_error) > TOLERANCE:
            factor = (chosen.measured_ratio["value"] / chosen.predicted_ratio) or 1.0
            state.target = chosen.budget_ratio / factor
            say(f"latency: measured {chosen.budget_error:+.1%} off the budget; one corrective solve at {state.target:.3f}× "
                f"(the prediction was off by {chosen.prediction_error:+.1%})")
            try:
                second = run()
            except IsodeployError as exc:  # the corrected target is out of the table's reach: keep the first result
                correction = f"the corrective solve at {state.target:.3f}× found no plan ({exc}); the first result stands"
                say(f"latency: {correction}")
            else:
                attempts.append(_measure(state, second))
                if _rank(attempts[1]) <= _rank(chosen):
                    result, chosen = second, attempts[1]
        result.spec["latency"] = _report(state, attempts, chosen, state.decision(result.plan).table)
        if correction:
            result.spec["latency"]["correction_failed"] = correction
        result.spec["config"]["target_latency"] = settings.budget.text
        return result
    finally:
        measurer.close()


def _rank(attempt: Attempt) -> tuple[bool, float]:
    """Better attempt first: one that keeps the budget (within the tolerance) beats one that breaks it, then the closer."""
    return attempt.budget_error > TOLERANCE, abs(attempt.budget_error)


def _report(state: _State, attempts: list[Attempt], chosen: Attempt, use: TableUse) -> dict[str, Any]:
    s, m, t = state.settings, state.measurer, use.table
    return {
        "budget": s.budget.to_dict(),
        "runtime": m.runtime, "runtime_version": m.runtime_version, "device": m.device, "precision": m.precision,
        "batch": m.batch, "threads": m.threads, "processor": m.processor,
        "measured_ratio": chosen.measured_ratio, "measured_ms": chosen.measured_ms, "dense_ms": chosen.dense_ms,
        "predicted_ratio": chosen.predicted_ratio, "prediction_error": chosen.prediction_error,
        "budget_error": chosen.budget_error, "within_tolerance": abs(chosen.budget_error) <= TOLERANCE,
        "corrective_step": len(attempts) > 1, "attempts": [asdict(a) for a in attempts],
        "solver": SOLVER,
        "table": {"path": str(use.file) if use.file else None, "key": t.key, "reused": use.reused,
                  "build_seconds": t.build_seconds, "measurements": t.measurements, "noise": t.noise, "slope": t.slope,
                  "dense_ms": t.dense_ms, "load": t.load},
    }
