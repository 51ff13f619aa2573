"""What a run prints: rank 0 alone shows a progress bar (stderr) and one line per epoch (stdout).

Other ranks stay silent, so a ``torchrun`` job's log reads like a single process's.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator


class _Bar:
    """A rich progress bar with loss and throughput fields; one task per epoch."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task = None

    def start(self, epoch: int, epochs: int, steps: int) -> Any:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"epoch {epoch}/{epochs}", total=steps, loss="…", rate="")
        return self.task


class RunLog:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        if enabled:
            from rich.console import Console

            self.out = Console(highlight=False)
            self.err = Console(stderr=True, highlight=False)

    def info(self, message: str) -> None:
        if self.enabled:
            self.out.print(message, markup=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        if self.enabled:
            print(f"warning: {message}", file=sys.stderr)

    def status(self, message: str):
        return self.err.status(message) if self.enabled else nullcontext()

    @contextmanager
    def progress(self) -> Iterator[_Bar | None]:
        if not self.enabled:
            yield None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=True) as progress:
            yield _Bar(progress)

    def baseline(self, pruned: Any, teacher: Any) -> None:
        if pruned is not None:
            teacher_text = f", teacher {teacher.top1:.2f} %" if teacher is not None else ""
            self.info(f"before fine-tuning: student val top-1 {pruned.top1:.2f} % (top-5 {pruned.top5:.2f} %){teacher_text}")

    def epoch(self, line: dict[str, Any], epochs: int, metric: str) -> None:
        text = f"epoch {line['epoch']}/{epochs}  loss {line['train_loss']:.4f}  lr {line['lr']:.2e}"
        if "val_top1" in line:
            text += f"  val top-1 {line['val_top1']:.2f} %  top-5 {line['val_top5']:.2f} %"
        text += f"  {line['images_per_s']:,.0f} img/s"
        if line.get("skipped"):
            text += f"  ({line['skipped']} undecodable image(s) replaced)"
        self.info(text + ("  *best*" if line.get("best") else ""))

    def done(self, report: Any) -> None:
        value = f"{report.best_value:.2f} %" if report.best_metric == "val_top1" else f"{report.best_value:.4f}"
        self.info(f"best epoch {report.best_epoch} ({report.best_metric} {value}) → {report.best_dir}; "
                  f"last → {report.last_dir}; metrics → {report.metrics_file}")
