"""Which model factories the user trusted, without importing torch: the CLI sets it up before it
knows which command runs (``--trust-factory``, a factory named as MODEL), for that command only.

A folder is data: what it names is imported only when the user trusted that exact factory.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from isodeploy.core.errors import IsodeployError

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
FACTORY_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")


_TRUSTED: set[str] = set()


def trust_factories(names: list[str]) -> None:
    """Factories the user named explicitly (``--trust-factory``): folders naming them may import them."""
    for name in names:
        if not FACTORY_RE.fullmatch(name):
            raise IsodeployError(f"--trust-factory '{name}' must look like package.module:function")
        _TRUSTED.add(name)


@contextmanager
def trust_scope() -> Iterator[None]:
    """Trust given during one CLI command (``--trust-factory``, a factory MODEL) ends with it, also
    when commands run in one process (tests, scripts calling ``isodeploy.cli.main``)."""
    saved = set(_TRUSTED)
    try:
        yield
    finally:
        _TRUSTED.clear()
        _TRUSTED.update(saved)


def is_trusted(name: str) -> bool:
    """Whether the user trusted the factory ``name`` (``--trust-factory``, or by naming it as MODEL)."""
    return name in _TRUSTED


def is_factory(query: str) -> bool:
    """Whether a MODEL string names a factory ``package.module:function`` (not ``torchvision:``/``hf:``)."""
    return ":" in query and not query.startswith(("torchvision:", "hf:")) and bool(FACTORY_RE.fullmatch(query))
