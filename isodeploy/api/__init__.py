"""The public API: what the CLI's commands call, and what a Python user calls, with the same
defaults and the same one-line :class:`~isodeploy.core.errors.IsodeployError` messages.

Models and pruning live in :mod:`isodeploy.api.models`, export / verify / bench in
:mod:`isodeploy.api.deploy`, ``prune`` to a folder in :mod:`isodeploy.api.pruning`, the whole
pipeline in :mod:`isodeploy.api.pipeline`, fine-tuning in :mod:`isodeploy.api.train`, Triton
repositories in :mod:`isodeploy.api.serve`, report files in :mod:`isodeploy.api.files` and MODEL
strings in :mod:`isodeploy.api.model_args`. ``docs/api.md`` is generated from the docstrings
(``python -m isodeploy.api.reference``).
"""

from isodeploy.core.errors import ExitCode, IsodeployError, ParameterError

from isodeploy.api.deploy import bench, export_onnx, verify
from isodeploy.api.files import check_location, check_report_paths, write_json_atomic
from isodeploy.api.model_args import (folder_ignores, is_factory, is_path_like, model_argument_warnings, model_folder,
                                      shadowing_folder, trust_factories, trust_scope)
from isodeploy.api.models import RATIO_KINDS, analyze, create_model, default_preset, example_inputs, load, prune, prune_config, save
from isodeploy.api.pipeline import CallbackReporter, PipelineOptions, PipelineResult, prune_export, run_pipeline
from isodeploy.api.pipeline import print_summary as print_pipeline_summary
from isodeploy.api.pruning import PruneRun, parse_macs, prune_to_folder
from isodeploy.api.pruning import print_summary as print_prune_summary
from isodeploy.api.serve import TritonRepoReport, parse_batch_sizes, triton_repo, write_triton_repo
from isodeploy.api.train import FinetuneConfig, finetune, run_finetune

__all__ = ["CallbackReporter", "ExitCode", "FinetuneConfig", "IsodeployError", "ParameterError", "PipelineOptions",
           "PipelineResult", "PruneRun", "RATIO_KINDS", "TritonRepoReport", "analyze", "bench", "check_location",
           "check_report_paths", "create_model", "default_preset", "example_inputs", "export_onnx", "finetune",
           "folder_ignores", "is_factory", "is_path_like", "load", "model_argument_warnings", "model_folder",
           "parse_batch_sizes", "parse_macs", "print_pipeline_summary", "print_prune_summary", "prune", "prune_config",
           "prune_export", "prune_to_folder", "run_finetune", "run_pipeline", "save", "shadowing_folder", "triton_repo",
           "trust_factories", "trust_scope", "verify", "write_json_atomic", "write_triton_repo"]
