"""The one argument check of the Python API: a wrong type is a :class:`ParameterError` naming the
argument (``ratios= must be a dict …; got str``), never a raw ``AttributeError``/``TypeError`` from
deep inside. ``api.py`` and ``api_deploy.py`` call :func:`check_arg` on what users pass; the CLI
passes the same values and shows the flag instead (``ParameterError.for_cli``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

from isodeploy.core.errors import ParameterError

_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "path": (lambda v: isinstance(v, (str, os.PathLike)) and bool(str(v)), "a path (str or pathlib.Path)"),
    "bool": (lambda v: isinstance(v, bool), "True or False"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "positive int": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer ≥ 1"),
    "positive number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
                        "a finite number > 0"),
    "callable": (callable, "a function"),
    "dict": (lambda v: isinstance(v, dict), "a dict"),
    "list": (lambda v: isinstance(v, (list, tuple)), "a list"),
}


def check_arg(name: str, value: Any, kind: str, *, optional: bool = False, hint: str = "") -> Any:
    """``value`` when it is of ``kind`` (a key of the table above; None allowed with ``optional``),
    else one :class:`ParameterError` naming ``name``, what it must be and what it got."""
    if value is None and optional:
        return value
    test, expected = _KINDS[kind]
    if not test(value):
        got = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
        raise ParameterError(name, f"must be {expected}{' or None' if optional else ''}{hint}; got {got[:60]}")
    return value


def check_path_arg(name: str, value: Any, *, optional: bool = False) -> Path | None:
    """A path argument as a :class:`~pathlib.Path` (str or PathLike), or one line naming it."""
    check_arg(name, value, "path", optional=optional)
    return None if value is None else Path(value)


def check_mapping_arg(name: str, value: Any, key_kind: str, value_kind: str, *, optional: bool = True) -> Any:
    """A dict whose keys and values are of the given kinds (``rules={op: rule}``, ``ratios={kind: x}``)."""
    if value is None and optional:
        return value
    check_arg(name, value, "dict", optional=optional)
    for key, item in value.items():
        if key_kind != "any":
            check_arg(f"{name} key {key!r}", key, key_kind)
        if value_kind != "any":
            check_arg(f"{name}[{key!r}]", item, value_kind)
    return value
