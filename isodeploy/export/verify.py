"""Compare a candidate runner (ONNX, FP16 ONNX, engine) with a reference runner on the same inputs.

Gates (documented in docs/export.md):

* FP32 — every element within ``atol + rtol·max(|ref|, 1e-3·sample max|ref|)`` (1e-4, 1e-3) and 100 %
  top-1 agreement (the floor: a near-zero element of a sample with huge values carries their rounding
  noise, see ``REL_FLOOR`` in :mod:`isodeploy.export.verify_stats`);
* FP16 — per-sample cosine similarity ≥ 0.999 and top-1 agreement ≥ 99 %.

Top-1 counts a near-tie as agreement: a candidate pick whose *reference* logit lies within the
element tolerance of the reference's best logit (FP16: within 1e-3 of the sample's largest |logit|) is
a tie that rounding may break either way, not an error. Random-weight models are full of such ties.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from isodeploy.core.errors import IsodeployError
from isodeploy.export.verify_stats import REL_FLOOR, OutputStats, finite_or_none, output_stats

#: FP16 top-1 tie band, relative to the sample's largest |logit| (about one FP16 rounding step of the max)
FP16_TIE_RTOL = 1e-3
#: how the messages write the per-element scale of the rtol term
_SCALE = f"max(|ref|, {REL_FLOOR:g}·sample max|ref|)"


@dataclass
class Gates:
    """Pass/fail thresholds; ``None`` switches a check off."""

    name: str = "fp32"
    atol: float | None = 1e-4
    rtol: float | None = 1e-3
    min_cosine: float | None = None
    min_top1: float | None = 1.0

    @classmethod
    def fp32(cls) -> Gates:
        return cls()

    @classmethod
    def fp16(cls) -> Gates:
        return cls(name="fp16", atol=None, rtol=None, min_cosine=0.999, min_top1=0.99)

    @classmethod
    def for_precision(cls, precision: str) -> Gates:
        return cls.fp16() if precision.lower().startswith("fp16") else cls.fp32()

    def override(self, atol: float | None = None, rtol: float | None = None, min_cosine: float | None = None,
                 min_top1: float | None = None) -> Gates:
        """Replace the thresholds the user gave on the command line; the rest stay. NaN, negative or
        out-of-range values are refused (a NaN gate would pass or fail everything silently)."""
        from isodeploy.core.artifacts import check_fraction

        check_fraction(atol, "--atol", low=0.0, high=float("inf"), high_open=False)
        check_fraction(rtol, "--rtol", low=0.0, high=float("inf"), high_open=False)
        check_fraction(min_cosine, "--min-cosine", low=-1.0, high=1.0, high_open=False)
        check_fraction(min_top1, "--min-top1", low=0.0, high=1.0, high_open=False)
        changes = {k: v for k, v in dict(atol=atol, rtol=rtol, min_cosine=min_cosine, min_top1=min_top1).items() if v is not None}
        return replace(self, name=self.name + ("+custom" if changes else ""), **changes)

    def describe(self) -> str:
        parts = []
        if self.atol is not None or self.rtol is not None:
            parts.append(f"|err| ≤ {self.atol or 0:g} + {self.rtol or 0:g}·{_SCALE}")
        if self.min_cosine is not None:
            parts.append(f"cosine ≥ {self.min_cosine:g}")
        if self.min_top1 is not None:
            parts.append(f"top-1 agreement ≥ {self.min_top1:.0%}")
        return f"{self.name}: " + ", ".join(parts)


@dataclass
class VerifyReport:
    """Everything ``verify`` measured; ``to_dict`` is the ``--json`` payload."""

    passed: bool
    candidate: str
    reference: str
    gates: Gates
    batch_sizes: list[int]
    batches: int
    samples: int
    outputs: list[OutputStats]
    failures: list[str]
    candidate_seconds: float
    reference_seconds: float
    label: str = "random"
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return finite_or_none(asdict(self))


def _feeds(runner: Any, batch: np.ndarray) -> dict[str, np.ndarray]:
    if len(runner.input_names) != 1:
        raise IsodeployError(f"{runner.name} has {len(runner.input_names)} inputs; verify supports single-input image models")
    return {runner.input_names[0]: batch}


def _run_all(runner: Any, inputs: list[np.ndarray]) -> tuple[list[list[np.ndarray]], float]:
    start = time.perf_counter()
    outs = [runner.run(_feeds(runner, b)) for b in inputs]
    return outs, time.perf_counter() - start


def _check_shapes(candidate: Any, cand: list[list[np.ndarray]], ref: list[list[np.ndarray]]) -> None:
    for i, (c_outs, r_outs) in enumerate(zip(cand, ref)):
        if len(c_outs) != len(r_outs):
            raise IsodeployError(f"the candidate gives {len(c_outs)} outputs but the reference {len(r_outs)}: they are not the same model")
        for j, (c, r) in enumerate(zip(c_outs, r_outs)):
            if c.shape != r.shape:
                name = candidate.output_names[j] if j < len(candidate.output_names) else str(j)
                raise IsodeployError(f"output '{name}' has shape {list(c.shape)} from the candidate but {list(r.shape)} "
                                     f"from the reference (batch {i}): they are not the same model")


def _gate(stats: OutputStats, gates: Gates) -> None:
    """Fill ``passed`` and ``failures`` of one output, each failure naming the worst element."""
    worst = stats.worst.describe(stats.name) if stats.worst else f"output '{stats.name}'"
    # NaN/inf on either side fails whatever the gates: no tolerance, cosine or top-1 can judge them
    if stats.reference_nonfinite:
        stats.failures.append(f"output '{stats.name}': the reference gives {stats.reference_nonfinite} NaN/inf values, first at "
                              f"{stats.first_nonfinite['reference']}; the reference itself is broken (NaN/inf weights?)")
    if stats.candidate_nonfinite:
        stats.failures.append(f"output '{stats.name}': the candidate gives {stats.candidate_nonfinite} NaN/inf values "
                              f"({stats.nonfinite} where the reference is finite), first at {stats.first_nonfinite['candidate']}; {worst}")
    if stats.outside_tolerance:
        stats.failures.append(f"output '{stats.name}': {stats.outside_tolerance} of {stats.elements} elements outside "
                              f"{gates.atol or 0:g} + {gates.rtol or 0:g}·{_SCALE}; {worst}")
    if gates.min_cosine is not None and not stats.min_cosine >= gates.min_cosine:
        stats.failures.append(f"output '{stats.name}': min cosine similarity {stats.min_cosine:.6f} < {gates.min_cosine:g}; {worst}")
    if gates.min_top1 is not None and stats.top1_agreement is not None and stats.top1_agreement < gates.min_top1:
        stats.failures.append(f"output '{stats.name}': top-1 agreement {stats.top1_agreement:.1%} < {gates.min_top1:.0%}; {worst}")
    stats.passed = not stats.failures


def verify(candidate: Any, reference: Any, inputs: list[np.ndarray], gates: Gates, *, label: str = "random") -> VerifyReport:
    """Run both runners on every batch in ``inputs`` and gate the differences per output."""
    if not inputs:
        raise IsodeployError("verify needs at least one input batch")
    cand_outs, cand_s = _run_all(candidate, inputs)
    ref_outs, ref_s = _run_all(reference, inputs)
    _check_shapes(candidate, cand_outs, ref_outs)
    tie = 0.0 if (gates.atol is not None or gates.rtol is not None) else FP16_TIE_RTOL
    outputs = []
    for j in range(len(cand_outs[0])):
        name = candidate.output_names[j] if j < len(candidate.output_names) else f"output_{j}"
        stats = output_stats(name, [o[j] for o in cand_outs], [o[j] for o in ref_outs], gates.atol, gates.rtol, tie_rtol=tie)
        _gate(stats, gates)
        outputs.append(stats)
    sizes = sorted({len(b) for b in inputs})
    failures = [f for s in outputs for f in s.failures]
    return VerifyReport(
        passed=not failures,
        candidate=candidate.name,
        reference=reference.name,
        gates=gates,
        batch_sizes=sizes,
        batches=len(inputs),
        samples=sum(len(b) for b in inputs),
        outputs=outputs,
        failures=failures,
        candidate_seconds=round(cand_s, 3),
        reference_seconds=round(ref_s, 3),
        label=label,
    )
