"""Knowledge distillation: the teacher (by default the dense model the student was pruned from) and the loss.

Loss = ``kd_weight`` · T² · KL(teacher/T ‖ student/T) + (1 − ``kd_weight``) · CE(student, label) when the
batch has labels, and the KD term alone when it has none (a flat folder of unlabeled images). The T²
factor keeps the KD gradients' scale independent of the temperature (Hinton et al., 2015).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from isodeploy.core.errors import IsodeployError
from isodeploy.loading import load_model
from isodeploy.zoo import LoadedModel


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor | None,
                 temperature: float, kd_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss and its detached parts (``kd``, ``ce``); ``labels`` None for unlabeled data."""
    student_logits = student_logits.float()
    has_labels = labels is not None
    parts: dict[str, torch.Tensor] = {}
    loss = student_logits.new_zeros(())
    if teacher_logits is not None:
        t = temperature
        kd = F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits.float() / t, dim=-1),
                      reduction="batchmean", log_target=True) * (t * t)
        parts["kd"] = kd.detach()
        loss = loss + (kd_weight if has_labels else 1.0) * kd
    if has_labels:
        ce = F.cross_entropy(student_logits, labels)
        parts["ce"] = ce.detach()
        loss = loss + ((1.0 - kd_weight) if teacher_logits is not None else 1.0) * ce
    return loss, parts


def _source_teacher(spec: dict[str, Any]) -> LoadedModel:
    """Rebuild the dense model the spec says the student came from, with the same weights."""
    source = spec["source"]
    weights = str(source.get("weights", "pretrained"))
    if weights.startswith("folder:"):  # the student was pruned from another isodeploy folder
        return load_model(weights.removeprefix("folder:"))
    if weights not in ("pretrained", "random") and not Path(weights).exists():
        raise IsodeployError(f"the dense model's weights '{weights}' named in the student's spec are gone; "
                             "pass --teacher MODEL (with --teacher-weights) or --teacher none")
    return load_model(source["timm"], weights=weights, **source.get("create_kwargs", {}))


def load_teacher(choice: str, student: LoadedModel, spec: dict[str, Any], weights: str) -> LoadedModel | None:
    """``source`` → the dense origin; ``none`` → no teacher; anything else → a MODEL argument."""
    if choice == "none":
        return None
    if choice == "source":
        try:
            teacher = _source_teacher(spec)
        except IsodeployError as exc:
            name = spec["source"]["timm"]
            if "could not download pretrained weights" in str(exc):
                raise IsodeployError(f"the dense teacher '{name}' needs pretrained weights that could not be downloaded "
                                     f"(offline?); pass --teacher {name} --teacher-weights PATH (a local weights file) "
                                     "or --teacher none") from exc
            raise IsodeployError(f"the dense teacher '{name}' could not be rebuilt: {exc}") from exc
    elif choice == spec["source"]["timm"]:  # the source architecture with other weights: same create kwargs
        teacher = load_model(choice, weights=weights, **spec["source"].get("create_kwargs", {}))
    else:
        teacher = load_model(choice, weights=weights, img_size=None if Path(choice).is_dir() else student.input_size[1])
    check_teacher(teacher, student, choice)
    teacher.model.eval().requires_grad_(False)
    return teacher


def check_teacher(teacher: LoadedModel, student: LoadedModel, name: str) -> None:
    """The teacher must take the student's input and give the same number of classes."""
    x = student.example_input(2)
    try:
        with torch.no_grad():
            t_out = teacher.model(x)
    except Exception as exc:  # shape errors come in many types
        raise IsodeployError(f"teacher '{name}' can't take the student's {tuple(student.input_size)} input: "
                             f"{str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__}") from exc
    with torch.no_grad():
        s_out = student.model(x)
    if t_out.shape[-1] != s_out.shape[-1]:
        raise IsodeployError(f"teacher '{name}' outputs {t_out.shape[-1]} classes but the student {s_out.shape[-1]}; "
                             "pick a teacher with the same classes")
