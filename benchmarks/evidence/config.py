"""What one benchmark run does: every setting that decides its numbers, in one JSON-able dataclass.

The defaults are the "full" run (under 30 minutes on 2 CPU cores); :func:`quick` shrinks it to a
smoke run (under 5 minutes) that still exercises every method. They were fixed before any result was
seen and are not tuned per method: every pruned model gets the same fine-tuning recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

RANKINGS = ("isomorphic", "global", "local")
IMPORTANCES = ("magnitude", "taylor")
MODELS = ("vit", "resnet")


@dataclass
class Settings:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budgets: list[float] = field(default_factory=lambda: [0.7, 0.5])  # fraction of the dense MACs kept
    models: list[str] = field(default_factory=lambda: list(MODELS))
    rankings: list[str] = field(default_factory=lambda: list(RANKINGS))
    importances: list[str] = field(default_factory=lambda: list(IMPORTANCES))
    batch_size: int = 64
    dense_epochs: int = 25  # pretraining from scratch with cross-entropy (converged: see the JSON's curves)
    dense_lr: float = 2e-3  # AdamW, one-cycle schedule, weight decay 0.05
    finetune_epochs: int = 4  # distillation from the dense model, `isodeploy finetune` unchanged
    finetune_lr: float = 1e-3
    calib_batches: int = 16  # Taylor: batches of 16 labelled training images
    round_to: int = 1  # no width rounding, so rounding never blurs the ranking comparison
    jobs: int = 2  # worker processes
    threads: int = 1  # torch threads per worker

    @property
    def scratch_epochs(self) -> int:
        """The uniform baseline trains as many steps as the pruned models saw in total (dense + fine-tune)."""
        return self.dense_epochs + self.finetune_epochs


def quick(settings: Settings) -> Settings:
    """One seed and short schedules: checks the whole pipeline, not the claim."""
    return replace(settings, seeds=settings.seeds[:1], dense_epochs=12, finetune_epochs=1)
