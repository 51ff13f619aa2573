"""The one bounded JSON reader for every JSON isodeploy reads (specs, stage records, ownership
markers, bench reports, engine metadata, ONNX metadata values, Triton server replies).

Files and servers can send anything. Python's parser raises ``RecursionError`` on deeply nested
input (``'[' * 100000``), and data that parses at a depth of a few hundred still breaks every
recursive consumer later (``json.dumps``, ``deepcopy``, printing). So nesting is bounded at
:data:`MAX_DEPTH`, sizes at :data:`MAX_BYTES`, and every failure is one :class:`JsonError` line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError

MAX_DEPTH = 64  # nothing isodeploy writes nests deeper than ~6 levels
MAX_BYTES = 256 << 20  # a bench report with all its samples is a few MB


class JsonError(IsodeployError):
    """A JSON text that is invalid, too deep or too large (a subclass, so quiet readers can skip it)."""


def _too_deep(data: Any, limit: int) -> bool:
    """Whether ``data`` nests more than ``limit`` containers (iterative: no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(text: str | bytes, where: str, fix: str = "") -> Any:
    """The value of a JSON text, or one :class:`JsonError` line naming ``where`` (and ``fix``)."""
    hint = f"; {fix}" if fix else ""
    if len(text) > MAX_BYTES:
        raise JsonError(f"{where} is larger than {MAX_BYTES >> 20} MiB, not a JSON file isodeploy writes{hint}")
    try:
        data = json.loads(text)
    except RecursionError:
        raise JsonError(f"{where} nests JSON deeper than {MAX_DEPTH} levels{hint}") from None
    except json.JSONDecodeError as exc:
        raise JsonError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}){hint}") from None
    except (UnicodeDecodeError, ValueError, TypeError):
        raise JsonError(f"{where} is not a JSON text{hint}") from None
    if _too_deep(data, MAX_DEPTH):
        raise JsonError(f"{where} nests JSON deeper than {MAX_DEPTH} levels{hint}")
    return data


def read_json_file(path: Path, what: str = "file", fix: str = "") -> Any:
    """The JSON value in ``path``, or one line saying why not (missing, a folder, binary, invalid, too deep)."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        raise IsodeployError(f"{path} is not a regular file (a pipe or device?); pass a {what}")
    try:
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            raise JsonError(f"{path} is larger than {MAX_BYTES >> 20} MiB, not a {what} isodeploy writes")
        text = path.read_text()
    except FileNotFoundError:
        raise IsodeployError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise IsodeployError(f"{path} is a folder, not a {what}") from None
    except UnicodeDecodeError:
        raise JsonError(f"{path} is not a text (JSON) {what}{f'; {fix}' if fix else ''}") from None
    except OSError as exc:
        raise IsodeployError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_json(text, str(path), fix or f"restore or re-create the {what}")


def read_json_quietly(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing, a symbolic link, unreadable, not JSON or
    too deep: for files isodeploy keeps for itself (markers, stage records), whose damage means
    "start afresh"."""
    path = Path(path)
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return read_json_file(path)
    except IsodeployError:
        return None
