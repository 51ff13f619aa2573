"""How a bench measures: the adaptive, time-budgeted default, the paper's fixed protocol, or fixed counts.

* ``adaptive`` (default): warm up by time, then interleaved rounds until every headline ratio's 95 %
  interval is within ±``target`` of its value, or the budget is spent. Expensive artifacts that are
  in no headline ratio (the dense model) are rationed to a share of the time.
* ``paper``: exactly the supplement's protocol: 20 warm-up + 100 timed steps per artifact in 10
  interleaved rounds, batch 8 on CPU and 256 on GPU.
* ``fixed``: the same shape as ``paper`` with the step counts the user gave (``--warmup``/``--iters``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from isodeploy.core.errors import IsodeployError

PROTOCOLS = ("adaptive", "paper", "fixed")
DEFAULT_BUDGET_S = 120.0  # timed part of the main job's bench; with prune/export/probes it fits 5 min on 2 cores
PAPER_WARMUP, PAPER_ITERS, PAPER_ROUNDS = 20, 100, 10


@dataclass
class Protocol:
    """The measuring plan of one run; every field lands in the report."""

    name: str = "adaptive"
    warmup: int = 0  # warm-up steps per artifact (paper/fixed)
    iters: int = 0  # timed steps per artifact (paper/fixed)
    rounds: int = PAPER_ROUNDS  # interleaved rounds (paper/fixed)
    budget_s: float = DEFAULT_BUDGET_S  # adaptive: warm-up + timed rounds stop by then
    target: float = 0.02  # adaptive: stop once every headline interval is within ±target of its value
    confidence: float = 0.95
    warmup_s: float = 1.0  # adaptive: warm up each artifact for at least this long (and one step)
    min_rounds: int = 6  # the fewest paired rounds with a two-sided 95 % interval
    max_rounds: int = 400
    rationed_share: float = 0.2  # adaptive: time share of each artifact in no headline ratio
    min_block_s: float = 0.05  # adaptive: an artifact's steps in one round last at least this long

    @property
    def adaptive(self) -> bool:
        return self.name == "adaptive"

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.adaptive:
            return (f"adaptive: warm-up ≥ {self.warmup_s:g} s per artifact, then interleaved rounds (each headline pair A-B…B-A) until every "
                    f"headline ratio's {self.confidence:.0%} interval is within ±{self.target:.0%}, or {self.budget_s:g} s")
        what = "the paper's protocol" if self.name == "paper" else "fixed counts"
        return f"{what}: {self.warmup} warm-up + {self.iters} timed steps per artifact in {min(self.rounds, self.iters)} interleaved rounds"


def make_protocol(name: str | None, *, warmup: int | None = None, iters: int | None = None, budget_s: float | None = None,
                  target: float | None = None, prefix: str = "") -> Protocol:
    """The protocol a command asked for; step counts imply ``fixed``; conflicts are one line.

    ``prefix`` names the command's flags in messages: ``""`` for ``bench``/``compare`` (``--protocol``,
    ``--warmup``), ``"bench-"`` for ``prune-export`` (``--bench-protocol``, ``--bench-warmup``)."""
    flag, steps, budget_flag = f"--{prefix}protocol", f"--{prefix}warmup/--{prefix}iters", f"--{prefix}budget"
    if name is None:
        name = "fixed" if (warmup is not None or iters is not None) else "adaptive"
    name = str(name).strip().lower()
    if name not in PROTOCOLS:
        raise IsodeployError(f"{flag} '{name}' is not one of {', '.join(PROTOCOLS)}")
    if budget_s is not None:
        if not isinstance(budget_s, (int, float)) or isinstance(budget_s, bool) or not math.isfinite(budget_s) or budget_s <= 0:
            raise IsodeployError(f"{budget_flag} must be a positive number of seconds; got {budget_s!r}")
        if name != "adaptive":
            raise IsodeployError(f"{budget_flag} applies to the adaptive protocol, not to {flag} {name}: drop one of them")
    if target is not None and not (isinstance(target, (int, float)) and 0 < target < 1):
        raise IsodeployError(f"the interval target must be a fraction in (0, 1), e.g. 0.02; got {target!r}")
    if name == "adaptive":
        if warmup is not None or iters is not None:
            raise IsodeployError(f"step counts ({steps}) fix the protocol: drop them for {flag} adaptive, or use {flag} fixed")
        return Protocol(name="adaptive", budget_s=float(budget_s or DEFAULT_BUDGET_S), target=float(target or 0.02))
    if name == "paper":
        if (warmup not in (None, PAPER_WARMUP)) or (iters not in (None, PAPER_ITERS)):
            raise IsodeployError(f"{flag} paper is {PAPER_WARMUP} warm-up + {PAPER_ITERS} timed steps: drop {steps}, or use {flag} fixed")
        return Protocol(name="paper", warmup=PAPER_WARMUP, iters=PAPER_ITERS, rounds=PAPER_ROUNDS)
    warmup = PAPER_WARMUP if warmup is None else warmup
    iters = PAPER_ITERS if iters is None else iters
    if isinstance(warmup, bool) or isinstance(iters, bool) or not isinstance(warmup, int) or not isinstance(iters, int) or warmup < 0 or iters < 2:
        raise IsodeployError(f"need --{prefix}warmup ≥ 0 and --{prefix}iters ≥ 2 (got {warmup!r}, {iters!r})")
    return Protocol(name="fixed", warmup=warmup, iters=iters, rounds=PAPER_ROUNDS)
