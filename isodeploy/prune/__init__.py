"""Pruning: importance, plans, module fix-ups, the checked apply and specs.

The package is also callable: ``isodeploy.prune(model, example_inputs, ratio=...)`` is
:func:`isodeploy.api.prune`.
"""

from isodeploy.core.callable_module import make_callable

make_callable(__name__, "isodeploy.api", "prune")
