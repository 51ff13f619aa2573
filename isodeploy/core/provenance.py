"""Where an exported model came from, recorded by *name and hash*, never by a local path.

An ONNX file travels (to a server, a colleague, a bug report), so its metadata must neither leak the
producer's directory layout nor choose what a later command loads: ``verify`` with a reference read
from metadata would otherwise load whatever folder or weights file the metadata names. So:

* a model from a timm/torchvision name or a trusted factory records that name; its weights are
  ``pretrained``, ``random``, or ``file:NAME`` plus the file's sha256;
* a model from an isodeploy folder records ``source_folder`` (the folder's *name*) and the folder's
  ``weights_sha256`` (from its spec), not the folder's path;
* a reader finds a pruned model's folder only where the user put the file: the folder holding the
  ONNX (or engine) itself, and only when that folder's spec names the same weights hash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError

#: weights a name alone reproduces; anything else must be passed by the user
NAMED_WEIGHTS = ("pretrained", "random")


def source_record(loaded: Any) -> dict[str, Any]:
    """The ``source_model``/``source_folder``/``weights``/``weights_sha256`` metadata of a loaded model."""
    from isodeploy.core.hashing import sha256_file

    folder = getattr(loaded, "folder", None)
    if folder is not None:
        spec = _read_spec_quietly(Path(folder))
        return {"source_folder": Path(folder).resolve().name, "weights": f"folder:{Path(folder).resolve().name}",
                "weights_sha256": spec.get("weights_sha256") if isinstance(spec.get("weights_sha256"), str) else None}
    name = loaded.alias.name if getattr(loaded, "alias", None) else loaded.timm_name
    weights = str(loaded.weights)
    if weights in NAMED_WEIGHTS:
        return {"source_model": name, "weights": weights}
    path = Path(weights)
    return {"source_model": name, "weights": f"file:{path.name}",
            "weights_sha256": sha256_file(path) if path.is_file() else None}


def _read_spec_quietly(folder: Path) -> dict[str, Any]:
    try:
        spec = json.loads((folder / "isodeploy.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return spec if isinstance(spec, dict) else {}


def names_a_path(name: str) -> bool:
    """A metadata "model name" that is really a path (older exports recorded folders this way), or one
    a folder here would shadow: loading it would load whatever the file says."""
    return (name.startswith(("folder:", ".", "~")) or "/" in name or "\\" in name or os.sep in name
            or Path(name).is_absolute() or Path(name).exists())


def own_folder(artifact: Path | str | None, meta: dict[str, str]) -> Path | None:
    """The isodeploy folder holding ``artifact`` when the artifact was exported from it (same weights
    hash in its spec); None otherwise. The only folder a file's metadata can lead a reader to."""
    recorded = meta.get("weights_sha256")
    if artifact is None or not meta.get("source_folder") or not recorded:
        return None
    folder = Path(artifact).parent
    spec = _read_spec_quietly(folder)
    return folder if spec.get("weights_sha256") == recorded else None


def reference_weights(meta: dict[str, str], given: str | None, where: str) -> str:
    """The weights a rebuilt reference uses: the user's ``--weights``, or a named kind the metadata
    records. A weights *file* is never opened on a file's word; a given file must match its hash."""
    recorded = meta.get("weights") or "pretrained"
    digest = meta.get("weights_sha256")
    if given is None:
        if recorded in NAMED_WEIGHTS:
            return recorded
        shown = recorded.removeprefix("file:")
        raise IsodeployError(f"{where} was exported with the weights file '{Path(shown).name}'"
                             f"{f' (sha256 {digest[:12]}…)' if digest else ''}; verify opens only files you pass: "
                             f"add --weights PATH/TO/{Path(shown).name} (or --reference MODEL)")
    if given not in NAMED_WEIGHTS and digest and recorded.startswith("file:") and Path(given).is_file():
        from isodeploy.core.hashing import sha256_file

        if sha256_file(Path(given)) != digest:
            raise IsodeployError(f"--weights '{given}' is not the file {where} was exported with (sha256 differs from "
                                 f"the recorded {digest[:12]}…); pass the same weights, or --reference MODEL")
    return given
