"""The public API: what the CLI's commands call, and what a Python user calls, with the same
defaults and the same one-line :class:`~isodeploy.core.errors.IsodeployError` messages.

Models and pruning live in :mod:`isodeploy.api.models`, export / verify / bench in
:mod:`isodeploy.api.deploy`; what ``isodeploy verify`` runs in :mod:`isodeploy.api.verify`, export's
defaults in :mod:`isodeploy.api.export`, TensorRT engines in :mod:`isodeploy.api.engine`, channel
groups and presets in :mod:`isodeploy.api.inspect`. ``docs/api.md`` is generated from the docstrings
(``python -m isodeploy.api.reference``).
"""

from isodeploy.core.errors import ExitCode, IsodeployError, ParameterError
from isodeploy.api.deploy import bench, export_onnx, verify
from isodeploy.api.engine import EngineMeta, build_engine, default_engine_path
from isodeploy.api.export import check_export_options, default_onnx_path, export_report_dict
from isodeploy.api.inspect import ChannelGroups, Presets, channel_groups, list_presets, load_presets, recorded_frozen
from isodeploy.api.loaded import as_loaded
from isodeploy.api.models import RATIO_KINDS, analyze, create_model, default_preset, example_inputs, load, prune, prune_config, save
from isodeploy.api.verify import Gates, VerifyOutcome, VerifyReport, check_verify_options, verify_artifact

__all__ = ["ChannelGroups", "EngineMeta", "ExitCode", "Gates", "IsodeployError", "ParameterError", "Presets", "RATIO_KINDS",
           "VerifyOutcome", "VerifyReport", "analyze", "as_loaded", "bench", "build_engine", "channel_groups",
           "check_export_options", "check_verify_options", "create_model", "default_engine_path", "default_onnx_path",
           "default_preset", "example_inputs", "export_onnx", "export_report_dict", "list_presets", "load", "load_presets",
           "prune", "prune_config", "recorded_frozen", "save", "verify", "verify_artifact"]
