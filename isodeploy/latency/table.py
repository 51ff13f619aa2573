"""The latency table: per isomorphic class, the whole model's latency with that class alone cut to a
few width steps, measured on the target runtime as a ratio to the dense model (paired rounds).

A ratio, not milliseconds, because each step is timed interleaved with the dense model: a machine
that drifts during the build moves both sides alike. ``dense_ms`` puts the ratios on a clock.
Plain dataclasses that round-trip through JSON, so a table is cached and reused (``cache.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from isodeploy.core.errors import IsodeployError

TABLE_SCHEMA = 1


@dataclass
class Step:
    """One measured width of one class (every other class dense)."""

    keep: float  # the nominal fraction of the class's channels kept (the grid)
    width: int  # the class's total width after rounding
    ratio: float  # latency ÷ dense latency
    ci_low: float
    ci_high: float
    macs: int  # the model's MACs at this step
    params: int
    rounds: int = 0


@dataclass
class ClassTable:
    """The measured steps of one isomorphic class; ``unmeasurable`` says why a class has none."""

    class_id: int
    kind: str
    signature: str
    width: int
    groups: int
    steps: list[Step] = field(default_factory=list)
    unmeasurable: str | None = None

    def points(self) -> list[tuple[int, float, int]]:
        """(width, ratio, MACs) from the narrowest step up to the dense point (ratio 1)."""
        return sorted([(s.width, s.ratio, s.macs) for s in self.steps] + [(self.width, 1.0, -1)])


@dataclass
class LatencyTable:
    """Everything the solver needs about one model on one runtime/machine/threads/batch."""

    key: str
    fingerprint: dict[str, Any]
    model: str
    dense_ms: float
    dense_ci_ms: list[float]
    dense_macs: int
    dense_params: int
    classes: list[ClassTable]
    slope: float = 0.0  # latency ratio per fraction of dense MACs removed, fitted over all steps (prices cross terms)
    build_seconds: float = 0.0
    measurements: int = 0
    noise: float = 0.01  # the typical relative half-width of a step's interval
    load: dict[str, Any] | None = None  # the machine's load while the table was timed (benchmarking.loadwatch)
    schema: int = TABLE_SCHEMA

    def class_table(self, class_id: int) -> ClassTable | None:
        return next((c for c in self.classes if c.class_id == class_id), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "the latency table") -> "LatencyTable":
        """A table from JSON; anything malformed is one line naming ``where``."""
        try:
            if data.get("schema") != TABLE_SCHEMA:
                raise IsodeployError(f"{where} has schema {data.get('schema')!r}, this isodeploy reads {TABLE_SCHEMA}; rebuild it "
                                     "(drop --latency-table, or delete the file)")
            classes = [ClassTable(**{**c, "steps": [Step(**s) for s in c["steps"]]}) for c in data["classes"]]
            table = cls(**{**data, "classes": classes})
            for c in classes:
                for s in c.steps:
                    if not (0 < s.ratio < 10 and 0 < s.width <= c.width):
                        raise ValueError(f"class {c.class_id}: step width {s.width} ratio {s.ratio}")
            if not isinstance(table.fingerprint, dict):
                raise ValueError("fingerprint is not an object")
            if not table.dense_ms > 0:
                raise ValueError(f"dense_ms {table.dense_ms}")
            return table
        except IsodeployError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise IsodeployError(f"{where} is not an isodeploy latency table ({type(exc).__name__}: {str(exc)[:120]}); "
                                 "rebuild it (drop --latency-table, or delete the file)") from None
