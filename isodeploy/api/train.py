"""What ``isodeploy finetune DIR --data PATH -o OUT`` does, as one Python call: :func:`finetune`.

Distillation of a pruned student from its dense model, on one process or under
``torchrun --nproc_per_node N`` (DistributedDataParallel). :class:`FinetuneConfig` (every option,
from :mod:`isodeploy.train.config`) and :func:`run_finetune` (from :mod:`isodeploy.train.loop`, no
folder lock or report check) are re-exported for callers who build the config themselves, and
:func:`leave_after_failure` (from :mod:`isodeploy.train.dist`: the ranks of a failed torchrun run
leave the process group together; the CLI calls it before exiting).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

from isodeploy.api.files import check_report_paths, write_json_atomic
from isodeploy.train.checkpoint import RUN_FILES
from isodeploy.train.config import FinetuneConfig
from isodeploy.train.dist import leave_after_failure
from isodeploy.train.loop import run_finetune

__all__ = ["FinetuneConfig", "finetune", "leave_after_failure", "run_finetune"]


def finetune(student: str | Path, data: str, output: str | Path, *, val: str | None = None, teacher: str = "source",
             teacher_weights: str = "pretrained", epochs: int = 10, lr: float = 5e-4, min_lr: float = 1e-6,
             warmup_epochs: float = 1.0, weight_decay: float = 0.05, batch_size: int = 64, temperature: float = 2.0,
             kd_weight: float = 0.5, clip_grad: float = 1.0, ema: float = 0.0, amp: str = "auto", aug: str = "timm",
             workers: int | None = None, device: str = "auto", seed: int = 0, resume: bool = False,
             resume_from: str | Path | None = None, stop_after: int | None = None, force: bool = False,
             log_samples: bool = False, json_path: str | Path | None = None):
    """Fine-tune the pruned student folder ``student`` on ``data`` into the run folder ``output``.

    The defaults are the ``isodeploy finetune`` command's (``ema`` is the EMA decay; 0 disables it).
    ``output`` gets ``checkpoint.pt``, ``metrics.jsonl``, ``best/`` and ``last/``; ``resume=True``
    continues it exactly. ``json_path`` is checked before training and, on rank 0, gets the report.
    A single process holds ``output``'s lock for the run, so two runs never share one folder; under
    torchrun the ranks share it (a lock failing on one rank would leave the others waiting).
    Returns the :class:`~isodeploy.train.config.FinetuneReport`.
    """
    check_report_paths({"--json": json_path}, inputs=[student, teacher_weights, resume_from], folders=[(output, RUN_FILES)])
    cfg = FinetuneConfig(
        student=str(student), data=str(data), output=str(output), val=val, teacher=teacher, teacher_weights=teacher_weights,
        epochs=epochs, batch_size=batch_size, lr=lr, min_lr=min_lr, warmup_epochs=warmup_epochs, weight_decay=weight_decay,
        temperature=temperature, kd_weight=kd_weight, clip_grad=clip_grad, ema_decay=ema, amp=amp, aug=aug, workers=workers,
        device=device, seed=seed, resume=resume, resume_from=str(resume_from) if resume_from else None, stop_after=stop_after,
        force=force, log_samples=log_samples,
    )
    from isodeploy.core.output_folder import folder_lock

    single = int(os.environ.get("WORLD_SIZE", "1")) <= 1
    with folder_lock(Path(output), names=RUN_FILES) if single else nullcontext():
        report = run_finetune(cfg)
    if json_path and os.environ.get("RANK", "0") == "0":
        write_json_atomic(Path(json_path), report)
    return report
