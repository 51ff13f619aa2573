"""What a run leaves in its output folder, each file written atomically (temp file + ``os.replace``).

- ``checkpoint.pt``: everything needed to continue exactly (student, optimizer, schedule, loss scaler,
  EMA, best so far, metric history) plus a fingerprint of the student and the settings that decide
  the result, so ``--resume`` refuses a checkpoint of another model or of other settings.
- ``metrics.jsonl``: one JSON line per epoch (epoch 0 = before fine-tuning).
- ``best/``, ``last/``: isodeploy folders (``write_folder``) that every other command takes as MODEL.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from isodeploy.core.errors import IsodeployError

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
BEST_DIR = "best"
LAST_DIR = "last"
FORMAT = "isodeploy.finetune-checkpoint/1"
RUN_FILES = (CHECKPOINT_FILE, METRICS_FILE, SUMMARY_FILE, BEST_DIR, LAST_DIR, "samples")


def fingerprint(model: nn.Module, timm_name: str) -> dict[str, str]:
    """Identify a student by its timm name and the names and shapes of its tensors (its widths)."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(f"{name}:{tuple(value.shape)};".encode())
    return {"timm": timm_name, "shapes": digest.hexdigest()[:16]}


def _atomic_write(path: Path, write) -> None:
    from isodeploy.core.safe_write import atomic_path

    with atomic_path(path) as tmp:  # never onto a link or a special file
        write(tmp)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write the checkpoint so that a crash mid-write leaves the previous one intact."""
    _atomic_write(Path(path), lambda tmp: torch.save(dict(payload, format=FORMAT), tmp))


def load_checkpoint(path: Path, expected: dict[str, str], settings: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint (tensors and plain data only, never pickled code) and check it belongs to this run."""
    path = Path(path)
    if not path.is_file():
        raise IsodeployError(f"--resume: no checkpoint at '{path}'; run without --resume to start fresh")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign files raise many types
        from isodeploy.core.artifacts import pickle_refusal

        raise (pickle_refusal(path, exc, "--resume: checkpoint") or IsodeployError(
            f"--resume: '{path}' could not be read ({type(exc).__name__}); is it a finetune checkpoint?")) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise IsodeployError(f"--resume: '{path}' is not an isodeploy finetune checkpoint")
    found = state.get("fingerprint", {})
    if found != expected:
        what = f"'{found.get('timm')}'" + ("" if found.get("timm") != expected["timm"] else " with other widths")
        raise IsodeployError(f"--resume: '{path}' is a checkpoint of {what}, not of this student ('{expected['timm']}'); "
                             "resume with the student it was made from, or start fresh with --force")
    old = state.get("settings", {})
    for key, value in settings.items():
        if old.get(key) != value:
            flag = "nproc (world size)" if key == "world_size" else "--" + key.replace("_", "-")
            raise IsodeployError(f"--resume: {flag} is {value!r} but the checkpoint was made with {old.get(key)!r}; "
                                 "resume with the same settings (or start fresh with --force)")
    return state


def write_metrics(path: Path, lines: list[dict[str, Any]]) -> None:
    """Rewrite the whole JSON-lines file: after a resume it holds exactly the checkpoint's epochs plus new ones."""
    text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def write_json(path: Path, payload: Any) -> None:
    text = json.dumps(payload, indent=2, default=str) + "\n"
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def save_student(folder: Path, model: nn.Module, base_spec: dict[str, Any], finetune: dict[str, Any]) -> None:
    """An isodeploy folder for the fine-tuned student: the input spec (source = the dense model) + a finetune section."""
    from isodeploy.pruning.spec import write_folder

    spec = copy.deepcopy(base_spec)
    spec.pop("weights_sha256", None)
    spec["finetune"] = finetune
    write_folder(Path(folder), model, spec, force=False)


def clear_run(output: Path) -> None:
    """``--force``: remove what an earlier run left (only the names a run writes)."""
    from isodeploy.core.output_folder import refuse_links
    from isodeploy.core.safe_write import remove_quietly

    refuse_links(Path(output), RUN_FILES)  # never follow a link out of the run folder
    for name in RUN_FILES:
        if os.path.lexists(Path(output) / name):
            remove_quietly(Path(output) / name)
