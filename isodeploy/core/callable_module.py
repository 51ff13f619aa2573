"""Let a package double as a function: ``isodeploy.prune(...)`` and ``isodeploy.bench(...)``.

The public API's names ``prune`` and ``bench`` are also the names of the packages that implement
them, and importing a subpackage rebinds the parent's attribute to the module. Rather than rename
the packages, each one's module object is given a ``__call__`` that forwards to the API function,
so both ``isodeploy.prune(model, x, ratio=0.3)`` and ``isodeploy.prune.plan`` work.
"""

from __future__ import annotations

import importlib
import sys
import types


class _CallableModule(types.ModuleType):
    _target: tuple[str, str]

    def __call__(self, *args, **kwargs):
        module, name = self._target
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


def make_callable(module_name: str, target_module: str, target_name: str) -> None:
    """Make ``sys.modules[module_name]`` callable as ``target_module.target_name``."""
    module = sys.modules[module_name]
    module.__class__ = _CallableModule
    module._target = (target_module, target_name)
