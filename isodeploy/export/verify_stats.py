"""Error statistics between a candidate's and a reference's outputs, one output tensor at a time.

Kept apart from the gate logic in :mod:`isodeploy.export.verify` so that the numbers can be tested
against hand-made arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: relative errors, and the rtol part of the element tolerance, use max(|ref|, REL_FLOOR · the sample's
#: max|ref|) as scale: an element that is a near-zero result of cancelling huge terms carries the rounding
#: noise of those terms (FP32 noise ~1e-7 of the sample's scale), not of its own small value. Random-weight
#: networks without calibrated BatchNorm (MobileOne: logits ~1e13) show it; a real export error (a wrong
#: channel, a dropped branch) is of the order of the sample's scale and still fails by orders of magnitude.
REL_FLOOR = 1e-3


@dataclass
class Worst:
    """The single element that most exceeds its tolerance (or has the largest error when ungated)."""

    batch: int  # index of the batch in the inputs list
    batch_size: int
    sample: int  # row inside that batch
    index: list[int]  # position inside the sample's output
    candidate: float
    reference: float
    abs_err: float

    def describe(self, output: str) -> str:
        where = ",".join(str(i) for i in self.index)
        return (f"output '{output}' worst element [{where}] of sample {self.sample} in batch {self.batch} (batch size {self.batch_size}): "
                f"candidate {self.candidate:.6g} vs reference {self.reference:.6g} (|err| {self.abs_err:.3g})")


@dataclass
class OutputStats:
    """Figures for one output across every batch; ``top1``/``top5`` only for (N, classes) logits."""

    name: str
    shape: list[int]  # shape of one sample's output
    elements: int
    max_abs: float
    mean_abs: float
    p99_abs: float
    max_rel: float
    min_cosine: float
    mean_cosine: float
    nonfinite: int  # NaN/inf in the candidate where the reference is finite
    outside_tolerance: int | None  # elements beyond atol + rtol·|ref| (None when ungated)
    top1_agreement: float | None
    top5_overlap: float | None
    worst: Worst | None
    max_abs_by_batch_size: dict[str, float] = field(default_factory=dict)
    #: NaN/inf anywhere on each side, and where the first one sits (no gate can judge such an output)
    candidate_nonfinite: int = 0
    reference_nonfinite: int = 0
    first_nonfinite: dict[str, str] = field(default_factory=dict)  # "candidate"/"reference" → position
    passed: bool = True
    failures: list[str] = field(default_factory=list)


def _abs_err(cand: np.ndarray, ref: np.ndarray) -> np.ndarray:
    err = np.abs(cand.astype(np.float64) - ref.astype(np.float64))
    err[np.isnan(err)] = np.inf
    err[cand == ref] = 0.0  # equal infinities
    return err


def _cosine(cand: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity; two all-zero rows count as identical, a NaN row as -1."""
    c = cand.reshape(len(cand), -1).astype(np.float64)
    r = ref.reshape(len(ref), -1).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        cos = np.einsum("ij,ij->i", c, r) / (np.linalg.norm(c, axis=1) * np.linalg.norm(r, axis=1))
    both_zero = (np.abs(c).sum(axis=1) == 0) & (np.abs(r).sum(axis=1) == 0)
    cos = np.where(both_zero, 1.0, cos)
    return np.where(np.isfinite(cos), np.clip(cos, -1.0, 1.0), -1.0)


def _topk_figures(cand: np.ndarray, ref: np.ndarray, tie_tol: np.ndarray) -> tuple[float, float]:
    """Top-1 agreement (a candidate pick within ``tie_tol`` of the reference's best logit is a tie, not a flip)
    and mean top-5 overlap."""
    rows = np.arange(len(ref))
    c_top = np.nan_to_num(cand, nan=-np.inf).argmax(axis=1)
    r_top = ref.argmax(axis=1)
    tie = ref[rows, r_top] - ref[rows, c_top] <= tie_tol[rows, c_top]
    agree = (c_top == r_top) | (np.isfinite(cand[rows, c_top]) & tie)
    k = min(5, ref.shape[1])
    c5 = np.argsort(-np.nan_to_num(cand, nan=-np.inf), axis=1)[:, :k]
    r5 = np.argsort(-ref, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(c5, r5)])
    return float(agree.mean()), float(overlap)


def output_stats(name: str, cands: list[np.ndarray], refs: list[np.ndarray], atol: float | None, rtol: float | None,
                 tie_rtol: float = 0.0) -> OutputStats:
    """Compare one output over all batches. ``atol``/``rtol`` set the per-element tolerance (None: ungated);
    ``tie_rtol`` widens the top-1 tie band for gates without an element tolerance (FP16)."""
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():  # inf/NaN are reported, not warned about
        warnings.simplefilter("ignore", RuntimeWarning)
        return _output_stats(name, cands, refs, atol, rtol, tie_rtol)


def _output_stats(name: str, cands: list[np.ndarray], refs: list[np.ndarray], atol: float | None, rtol: float | None,
                  tie_rtol: float) -> OutputStats:
    cand = np.concatenate([c.reshape(len(c), -1) for c in cands]).astype(np.float64)
    ref = np.concatenate([r.reshape(len(r), -1) for r in refs]).astype(np.float64)
    err = _abs_err(cand, ref)
    scale = _scale(ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = err / np.maximum(scale, 1e-30)
    gated = atol is not None or rtol is not None
    tol = (atol or 0.0) + (rtol or 0.0) * scale
    ratio = err / np.maximum(tol, 1e-30) if gated else err
    worst = _locate(int(np.argmax(ratio)), cands, cand, ref, err) if err.size else None
    cos = _cosine(cand, ref)
    by_size: dict[str, float] = {}
    start = 0
    for c in cands:
        key = str(len(c))
        by_size[key] = max(by_size.get(key, 0.0), float(err[start:start + len(c)].max()) if c.size else 0.0)
        start += len(c)
    sample_shape = list(cands[0].shape[1:])
    top1 = top5 = None
    if len(sample_shape) == 1 and sample_shape[0] >= 2:
        band = tol if gated else tie_rtol * np.abs(ref).max(axis=1, keepdims=True) * np.ones_like(ref)
        top1, top5 = _topk_figures(cand, ref, band)
    return OutputStats(
        name=name,
        shape=sample_shape,
        elements=int(err.size),
        max_abs=float(err.max()) if err.size else 0.0,
        mean_abs=float(err.mean()) if err.size else 0.0,
        p99_abs=_p99(err),
        max_rel=float(np.nanmax(rel)) if rel.size else 0.0,
        min_cosine=float(cos.min()) if cos.size else 1.0,
        mean_cosine=float(cos.mean()) if cos.size else 1.0,
        nonfinite=int((~np.isfinite(cand) & np.isfinite(ref)).sum()),
        outside_tolerance=int((err > tol).sum()) if gated else None,
        top1_agreement=top1,
        top5_overlap=top5,
        worst=worst,
        max_abs_by_batch_size=by_size,
        candidate_nonfinite=int((~np.isfinite(cand)).sum()),
        reference_nonfinite=int((~np.isfinite(ref)).sum()),
        first_nonfinite={side: _first_nonfinite(values, cands) for side, values in (("candidate", cand), ("reference", ref))
                         if not np.isfinite(values).all()},
    )


def _scale(ref: np.ndarray) -> np.ndarray:
    """Per-element scale for relative errors: max(|ref|, REL_FLOOR · the sample's max finite |ref|)."""
    mag = np.abs(ref)
    finite = np.where(np.isfinite(mag), mag, 0.0)
    row_max = finite.max(axis=1, keepdims=True) if mag.size else finite
    return np.maximum(mag, REL_FLOOR * row_max)


def _position(flat: int, cands: list[np.ndarray], width: int) -> tuple[int, int, int, int, list[int]]:
    """A flat position in the concatenated (rows, features) arrays as (row, col, batch, sample in that
    batch, element index in the output's own shape)."""
    row, col = divmod(flat, width)
    batch, start = 0, 0
    while start + len(cands[batch]) <= row:
        start += len(cands[batch])
        batch += 1
    index = [int(i) for i in np.unravel_index(col, cands[batch].shape[1:])] if cands[batch].ndim > 1 else []
    return row, col, batch, row - start, index


def _first_nonfinite(values: np.ndarray, cands: list[np.ndarray]) -> str:
    """Where the first NaN/inf of one side sits, in words (batch, sample, element)."""
    flat = int(np.flatnonzero(~np.isfinite(values))[0])
    row, col, batch, sample, index = _position(flat, cands, values.shape[1])
    return f"element [{','.join(map(str, index))}] of sample {sample} in batch {batch} (value {values[row, col]})"


def _p99(err: np.ndarray) -> float:
    """99th percentile of |err|; inf (not NaN) when infinite errors reach it."""
    if not err.size:
        return 0.0
    value = float(np.percentile(err, 99))
    return float("inf") if np.isnan(value) else value


def _locate(flat: int, cands: list[np.ndarray], cand: np.ndarray, ref: np.ndarray, err: np.ndarray) -> Worst:
    """Turn a flat position in the concatenated (rows, features) arrays back into batch/sample/index."""
    row, col, batch, sample, index = _position(flat, cands, cand.shape[1])
    return Worst(batch=batch, batch_size=len(cands[batch]), sample=sample, index=index,
                 candidate=float(cand[row, col]), reference=float(ref[row, col]), abs_err=float(err[row, col]))


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN/inf: map them to None (recursively) before writing ``--json``."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value
