"""The public API: what the CLI's commands call, and what a Python user calls, with the same
defaults and the same one-line :class:`~isodeploy.core.errors.IsodeployError` messages.

Models and pruning live in :mod:`isodeploy.api.models`, export / verify / bench in
:mod:`isodeploy.api.deploy`. ``docs/api.md`` is generated from the docstrings
(``python -m isodeploy.api.reference``).
"""

from isodeploy.api.deploy import bench, export_onnx, verify
from isodeploy.api.models import RATIO_KINDS, analyze, create_model, default_preset, example_inputs, load, prune, prune_config, save

__all__ = ["RATIO_KINDS", "analyze", "bench", "create_model", "default_preset", "example_inputs", "export_onnx", "load", "prune",
           "prune_config", "save", "verify"]
