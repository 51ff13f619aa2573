"""Content hashes: of a file, and of a folder's names and contents (a Triton repo, ``finetune/``).

They tie an artifact to the exact inputs it was made from (the pipeline's stage records, the spec's
``weights_sha256``), so a changed input re-runs its stage and a swapped file is caught.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from isodeploy.core.safe_write import TEMP_PREFIX


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's relative names and file contents (a Triton repo, finetune/)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(TEMP_PREFIX)):
        digest.update(str(item.relative_to(path)).encode() + b"\0" + sha256_file(item).encode())
    return digest.hexdigest()
