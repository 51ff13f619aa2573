"""One runtime layer for ``verify`` and ``bench``: a runner per backend with the same surface.

Every runner has ``activate()`` (the heavy part: a session, a device copy, an engine), ``run(feeds)``
(numpy in, numpy out: what ``verify`` compares), ``input_names``/``input_shapes``/``output_names``,
``precision`` and ``device``, and ``timed_step(batch)``: one batch on a device-resident input, with the
clock the device calls for (what ``bench`` times). Open one with :func:`open_runner`.
"""

from isodeploy.runtime.base import Runner, TimedStep
from isodeploy.runtime.open import open_runner, runner_precision

__all__ = ["Runner", "TimedStep", "open_runner", "runner_precision"]
