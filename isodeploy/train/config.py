"""What a fine-tuning run is asked to do (:class:`FinetuneConfig`) and what it reports (:class:`FinetuneReport`).

Both are plain dataclasses so that the CLI, the checkpoint (which records the settings that decide the
result, to make ``--resume`` exact) and ``--json`` all share one description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from isodeploy.core.errors import IsodeployError

AUGMENTATIONS = ("timm", "light", "none")
AMP_MODES = ("auto", "off", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")

# Settings that change the numbers a run produces: a resumed run must use the same ones, or it
# would not continue the interrupted run but start a different one from its middle.
RESULT_KEYS = (
    "data", "val", "teacher", "teacher_weights", "epochs", "batch_size", "lr", "min_lr", "warmup_epochs",
    "weight_decay", "temperature", "kd_weight", "clip_grad", "ema_decay", "amp", "aug", "seed",
)


@dataclass
class FinetuneConfig:
    """Every option of ``isodeploy finetune``; defaults are the CLI's defaults."""

    student: str
    data: str
    output: str
    val: str | None = None
    teacher: str = "source"  # "source" (the dense model the student was pruned from) | "none" | MODEL
    teacher_weights: str = "pretrained"  # only for --teacher MODEL given as a timm name or alias
    epochs: int = 10
    batch_size: int = 64  # per process; the global batch is batch_size × world size
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    temperature: float = 2.0
    kd_weight: float = 0.5  # share of the KD term when labels exist; without labels the loss is KD only
    clip_grad: float = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: float = 0.0  # 0 disables EMA; e.g. 0.9998 keeps an EMA student that is evaluated and saved
    amp: str = "auto"
    aug: str = "timm"
    workers: int | None = None  # DataLoader workers per process; None picks min(4, cores per process)
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    resume_from: str | None = None
    stop_after: int | None = None  # stop after this epoch (time-limited jobs); continue with --resume
    force: bool = False
    log_samples: bool = False  # write each rank's trained sample indices (tests of the sharding)

    def validate(self) -> None:
        """Reject impossible values with one line naming the option."""
        checks = [
            (self.epochs >= 1, f"--epochs must be ≥ 1; got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be ≥ 1; got {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive; got {self.lr}"),
            (0 <= self.min_lr <= self.lr, f"--min-lr must be in [0, --lr]; got {self.min_lr}"),
            (self.warmup_epochs >= 0, f"--warmup-epochs must be ≥ 0; got {self.warmup_epochs}"),
            (self.weight_decay >= 0, f"--weight-decay must be ≥ 0; got {self.weight_decay}"),
            (self.temperature > 0, f"--temperature must be positive; got {self.temperature}"),
            (0 <= self.kd_weight <= 1, f"--kd-weight must be in [0, 1]; got {self.kd_weight}"),
            (self.clip_grad >= 0, f"--clip-grad must be ≥ 0 (0 disables); got {self.clip_grad}"),
            (0 <= self.ema_decay < 1, f"--ema must be in [0, 1) (0 disables); got {self.ema_decay}"),
            (self.amp in AMP_MODES, f"--amp must be one of {', '.join(AMP_MODES)}; got '{self.amp}'"),
            (self.aug in AUGMENTATIONS, f"--aug must be one of {', '.join(AUGMENTATIONS)}; got '{self.aug}'"),
            (self.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}; got '{self.device}'"),
            (self.workers is None or self.workers >= 0, f"--workers must be ≥ 0; got {self.workers}"),
            (self.stop_after is None or 1 <= self.stop_after <= self.epochs,
             f"--stop-after must be in [1, --epochs]; got {self.stop_after}"),
        ]
        for ok, message in checks:
            if not ok:
                raise IsodeployError(message)

    def result_settings(self, world_size: int) -> dict[str, Any]:
        """The settings a checkpoint records and ``--resume`` compares (see ``RESULT_KEYS``)."""
        return {key: getattr(self, key) for key in RESULT_KEYS} | {"world_size": world_size}


@dataclass
class EvalResult:
    """Top-1/top-5 (percent) and mean cross-entropy over a labelled set."""

    top1: float
    top5: float
    loss: float
    images: int


@dataclass
class FinetuneReport:
    """The outcome of a run: where things are, the metric history, the best epoch."""

    student: str
    output: str
    teacher: str
    world_size: int
    device: str
    epochs_planned: int
    epochs_done: int
    resumed_from_epoch: int
    best_epoch: int
    best_metric: str  # "val_top1" with --val, else "train_loss"
    best_value: float
    teacher_val: EvalResult | None
    pruned_val: EvalResult | None  # the student before fine-tuning
    final_val: EvalResult | None
    train_images: int
    skipped_images: int
    seconds: float
    best_dir: str
    last_dir: str
    checkpoint: str
    metrics_file: str
    history: list[dict[str, Any]] = field(default_factory=list)
