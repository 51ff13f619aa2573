"""``isodeploy finetune DIR --data PATH -o OUT``: recover a pruned student's accuracy by distillation.

Runs alone or under ``torchrun --nproc_per_node N -m isodeploy finetune ...`` (DistributedDataParallel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from isodeploy.commands.common import JsonOption


def finetune(
    student: Path = typer.Argument(..., help="The pruned student: an isodeploy folder from 'isodeploy prune'."),
    data: str = typer.Option(..., "--data", help="Training images: an ImageFolder tree (DATA/<class>/*) or a flat folder (unlabeled: distillation only)."),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder: checkpoint.pt, metrics.jsonl, best/ and last/ (isodeploy folders)."),
    val: Optional[str] = typer.Option(None, "--val", help="Validation ImageFolder tree for top-1/top-5 of student and teacher; picks best/."),
    teacher: str = typer.Option("source", "--teacher", help="source (the dense model DIR was pruned from) | none (labels only) | MODEL."),
    teacher_weights: str = typer.Option("pretrained", "--teacher-weights", help="Weights for --teacher MODEL: pretrained | random | PATH."),
    epochs: int = typer.Option(10, "--epochs", help="Epochs over --data."),
    lr: float = typer.Option(5e-4, "--lr", help="Peak AdamW learning rate (not scaled by the world size)."),
    min_lr: float = typer.Option(1e-6, "--min-lr", help="Learning rate at the end of the cosine decay."),
    warmup_epochs: float = typer.Option(1.0, "--warmup-epochs", help="Linear warm-up length in epochs (fractions allowed)."),
    weight_decay: float = typer.Option(0.05, "--weight-decay", help="AdamW weight decay (not on norms, biases, pos-embeds)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per step per process; global batch = this × processes."),
    temperature: float = typer.Option(2.0, "--temperature", "-T", help="Distillation temperature."),
    kd_weight: float = typer.Option(0.5, "--kd-weight", help="Share of the distillation term when labels exist (the rest is cross-entropy)."),
    clip_grad: float = typer.Option(1.0, "--clip-grad", help="Clip the gradient norm to this; 0 disables."),
    ema: float = typer.Option(0.0, "--ema", help="Keep an EMA of the student with this decay (e.g. 0.9998) and save it; 0 disables."),
    amp: str = typer.Option("auto", "--amp", help="Mixed precision: auto (bf16/fp16 on CUDA, off on CPU) | off | fp16 | bf16."),
    aug: str = typer.Option("timm", "--aug", help="Training augmentation: timm (its defaults) | light (milder crops, no colour jitter) | none."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data-loading processes per training process (default: up to 4)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (each torchrun rank takes GPU LOCAL_RANK)."),
    seed: int = typer.Option(0, "--seed", help="Seed for data order, augmentation and dropout (per epoch, so --resume is exact)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its checkpoint.pt, exactly."),
    resume_from: Optional[Path] = typer.Option(None, "--resume-from", help="Continue from this checkpoint file instead of OUT/checkpoint.pt."),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", help="Stop after this epoch (time-limited jobs); continue later with --resume."),
    force: bool = typer.Option(False, "--force", help="Start over in an OUT that holds an earlier run."),
    log_samples: bool = typer.Option(False, "--log-samples", hidden=True, help="Write OUT/samples/rank-N.jsonl (sharding checks)."),
    json_path: Optional[Path] = JsonOption,
) -> None:
    """Fine-tune a pruned student with distillation from its dense model, on one process or under torchrun."""
    from isodeploy.api import finetune as run_finetune

    run_finetune(
        student, data, output, val=val, teacher=teacher, teacher_weights=teacher_weights, epochs=epochs, lr=lr, min_lr=min_lr,
        warmup_epochs=warmup_epochs, weight_decay=weight_decay, batch_size=batch_size, temperature=temperature,
        kd_weight=kd_weight, clip_grad=clip_grad, ema=ema, amp=amp, aug=aug, workers=workers, device=device, seed=seed,
        resume=resume, resume_from=resume_from, stop_after=stop_after, force=force, log_samples=log_samples,
        json_path=json_path)


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
