"""Benchmarks: latency, memory, reports, comparisons and the CI gate.

The package is also callable: ``isodeploy.bench([...])`` is :func:`isodeploy.api_deploy.bench`.
"""

from isodeploy.core.callable_module import make_callable

make_callable(__name__, "isodeploy.api_deploy", "bench")
