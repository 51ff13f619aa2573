"""What a person sees while a bench runs: which artifact, which round, how precise, elapsed and ETA.

Two reporters with one interface. On a terminal, a rich live display on stderr; without one (CI logs,
pipes), plain lines on stderr — one per round, at most one per ``every_s`` seconds, always with the
word ``ETA`` — so a log shows that the run is alive and when it will end.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Iterator


@dataclass
class Tick:
    """One progress event of the timing loop."""

    event: str  # warmup | step | round | done
    artifact: str
    round: int  # rounds completed
    rounds_expected: int | None
    elapsed_s: float
    eta_s: float | None
    precision: float | None = None  # widest headline interval half-width so far (0.03 = ±3 %)
    target: float | None = None
    note: str = ""

    def text(self) -> str:
        parts = [f"round {self.round}" + (f"/~{self.rounds_expected}" if self.rounds_expected else "")]
        if self.event == "warmup":
            parts = ["warm-up"]
        parts.append(self.artifact)
        if self.precision is not None and self.precision == self.precision:
            parts.append(f"CI ±{self.precision:.1%}" + (f" (target ±{self.target:.0%})" if self.target else ""))
        parts.append(f"elapsed {fmt_seconds(self.elapsed_s)}")
        parts.append(f"ETA {fmt_seconds(self.eta_s) if self.eta_s is not None else '?'}")
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = max(0, int(round(s)))
    return f"{s // 60}:{s % 60:02d}"


class PlainReporter:
    """Plain lines for logs: a stage line each, a timing line per round (rate-limited), a final line."""

    def __init__(self, stream: IO[str] | None = None, every_s: float = 10.0, prefix: str = "bench") -> None:
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.prefix = prefix
        self._last = -1e9

    def __enter__(self) -> "PlainReporter":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _print(self, text: str) -> None:
        print(f"{self.prefix}: {text}", file=self.stream, flush=True)
        self._last = time.monotonic()

    @contextmanager
    def stage(self, text: str) -> Iterator[None]:
        self._print(text)
        yield

    def tick(self, t: Tick) -> None:
        now = time.monotonic()
        due = now - self._last >= self.every_s
        if t.event == "done" or (t.event == "round" and (t.round == 1 or due)) or (t.event in ("step", "warmup") and due):
            self._print(t.text())


class CallbackReporter(PlainReporter):
    """Plain lines through a callback (a pipeline's console), plus a live status line updated every step.

    ``prune-export`` already shows one live status; a second rich display would fight it, so the bench
    reports through the command's own console instead."""

    def __init__(self, say: Any, update: Any = None, every_s: float = 10.0, prefix: str = "bench") -> None:
        super().__init__(stream=None, every_s=every_s, prefix=prefix)
        self.say, self.update = say, update

    def _print(self, text: str) -> None:
        self.say(f"{self.prefix}: {text}")
        self._last = time.monotonic()

    @contextmanager
    def stage(self, text: str) -> Iterator[None]:
        if self.update:
            self.update(f"{self.prefix}: {text}")
        self._print(text)
        yield

    def tick(self, t: Tick) -> None:
        if self.update:
            self.update(f"{self.prefix}: {t.text()}")
        super().tick(t)


class RichReporter:
    """A rich live display on stderr: one spinner per preparing stage, one bar for the timing loop."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), console=Console(stderr=True),
                                 refresh_per_second=4, transient=False)
        self._task: Any = None

    def __enter__(self) -> "RichReporter":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    @contextmanager
    def stage(self, text: str) -> Iterator[None]:
        task = self.progress.add_task(text, total=None)
        try:
            yield
        finally:
            self.progress.remove_task(task)

    def tick(self, t: Tick) -> None:
        done = t.elapsed_s / (t.elapsed_s + t.eta_s) if t.eta_s is not None and t.elapsed_s + t.eta_s > 0 else None
        if self._task is None:
            self._task = self.progress.add_task(t.text(), total=100)
        self.progress.update(self._task, description=t.text(), completed=100 if t.event == "done" else (100 * done if done is not None else 0))


class SilentReporter:
    """No output (the Python API's default)."""

    def __enter__(self) -> "SilentReporter":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @contextmanager
    def stage(self, text: str) -> Iterator[None]:
        yield

    def tick(self, t: Tick) -> None:
        pass


def make_reporter() -> Any:
    """Rich on a terminal, plain lines otherwise (stderr either way, so stdout tables stay clean)."""
    return RichReporter() if sys.stderr.isatty() else PlainReporter()
