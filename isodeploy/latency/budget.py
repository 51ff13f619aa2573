"""``--target-latency``: a time (``300ms``, ``0.3s``) or a fraction of the dense model's measured latency (``0.5``).

A bare number is a fraction, so ``300`` (no unit) is refused rather than read as 300 ms or as
30 000 %: a silent guess about units would make the budget wrong by a factor of 1000.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from isodeploy.core.errors import ParameterError

_UNITS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
_TIME = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(us|µs|ms|s)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LatencyBudget:
    """What the user asked for: exactly one of ``ms`` (absolute) and ``fraction`` (of the dense latency)."""

    text: str
    ms: float | None = None
    fraction: float | None = None

    def fraction_of(self, dense_ms: float) -> float:
        """The budget as a fraction of ``dense_ms``; a time at or above the dense latency is refused."""
        if self.fraction is not None:
            return self.fraction
        assert self.ms is not None
        if self.ms >= dense_ms:
            raise ParameterError("target_latency", f"{self.text} is not below the dense model's measured {dense_ms:.3g} ms on this "
                                 "runtime; pass a smaller time or a fraction such as 0.5")
        return self.ms / dense_ms

    def describe(self, dense_ms: float | None = None) -> str:
        if self.ms is not None:
            return f"{self.ms:.4g} ms"
        extra = f" = {self.fraction * dense_ms:.4g} ms" if dense_ms else ""
        return f"{self.fraction:.3g} × dense{extra}"

    def to_dict(self) -> dict:
        return asdict(self)


def parse_latency_budget(value: "str | float | int | LatencyBudget | None") -> LatencyBudget | None:
    """``'300ms'`` → 300 ms; ``0.25`` or ``'0.25'`` → a quarter of the dense latency; bad values are one line."""
    if value is None or isinstance(value, LatencyBudget):
        return value
    if isinstance(value, bool):
        raise ParameterError("target_latency", f"takes a time such as 300ms or a fraction of the dense latency such as 0.5; got {value!r}")
    text = str(value).strip()
    match = _TIME.match(text)
    if match:
        ms = float(match.group(1)) * _UNITS[match.group(2).lower()]
        if not (math.isfinite(ms) and ms > 0):
            raise ParameterError("target_latency", f"must be a positive time, e.g. 300ms; got '{text}'")
        return LatencyBudget(text=text, ms=ms)
    try:
        number = float(text)
    except ValueError:
        raise ParameterError("target_latency", f"takes a time such as 300ms or a fraction of the dense latency such as 0.5; got '{text}'") from None
    if not math.isfinite(number):
        raise ParameterError("target_latency", f"must be finite: a time such as 300ms or a fraction such as 0.5; got '{text}'")
    if not 0.0 < number < 1.0:
        hint = f"; for a time add its unit: {text}ms" if number >= 1 else ""
        raise ParameterError("target_latency", f"a bare number is a fraction of the dense model's latency, in (0, 1); got '{text}'{hint}")
    return LatencyBudget(text=text, fraction=number)
