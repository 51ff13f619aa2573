"""The public API: what the CLI's commands call, and what a Python user calls, with the same
defaults and the same one-line :class:`~isodeploy.core.errors.IsodeployError` messages.

Models and pruning live in :mod:`isodeploy.api.models`, export / verify in :mod:`isodeploy.api.deploy`,
bench and its regression gate in :mod:`isodeploy.api.benchmark`, compare in
:mod:`isodeploy.api.comparison`, ``prune`` to a folder in :mod:`isodeploy.api.pruning`, the whole
pipeline in :mod:`isodeploy.api.pipeline`, fine-tuning in :mod:`isodeploy.api.train`, Triton
repositories in :mod:`isodeploy.api.serve`, report files in :mod:`isodeploy.api.files` and MODEL
strings in :mod:`isodeploy.api.model_args`; what ``isodeploy verify`` runs in :mod:`isodeploy.api.verify`,
export's defaults in :mod:`isodeploy.api.export`, TensorRT engines in :mod:`isodeploy.api.engine`, channel
groups and presets in :mod:`isodeploy.api.inspect`. ``docs/api.md`` is generated from the docstrings
(``python -m isodeploy.api.reference``).
"""

from isodeploy.core.errors import ExitCode, IsodeployError, ParameterError

from isodeploy.api.benchmark import (bench, bench_gate, bench_markdown, bench_notes, bench_payload, bench_settings, bench_table,
                                     check_baseline_keys, gate_table, load_baseline, parse_regression, progress_reporter, ratio_table,
                                     regression_error, split_runtimes, write_bench_files)
from isodeploy.api.comparison import (PLOT_FORMATS, compare, compare_markdown, compare_notes, compare_table, parse_accuracy,
                                      plot_latency_vs_macs, uniform_twins, write_compare_files)
from isodeploy.api.deploy import export_onnx, verify
from isodeploy.api.engine import EngineMeta, build_engine, default_engine_path
from isodeploy.api.export import check_export_options, default_onnx_path, export_report_dict
from isodeploy.api.inspect import ChannelGroups, Presets, channel_groups, list_presets, load_presets, recorded_frozen
from isodeploy.api.loaded import as_loaded
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
from isodeploy.api.verify import Gates, VerifyOutcome, VerifyReport, check_verify_options, verify_artifact

__all__ = [
    # models and pruning
    "create_model", "example_inputs", "analyze", "prune", "prune_config", "save", "load", "default_preset", "RATIO_KINDS",
    "prune_to_folder", "PruneRun", "parse_macs", "print_prune_summary",
    "as_loaded", "channel_groups", "ChannelGroups", "recorded_frozen", "list_presets", "Presets", "load_presets",
    # export, verify, engines
    "export_onnx", "default_onnx_path", "check_export_options", "export_report_dict", "verify", "verify_artifact", "VerifyOutcome",
    "VerifyReport", "Gates", "check_verify_options", "build_engine", "default_engine_path", "EngineMeta",
    # bench, gate, compare
    "bench", "bench_settings", "split_runtimes", "progress_reporter", "bench_table", "ratio_table", "bench_notes", "bench_payload",
    "bench_markdown", "write_bench_files", "load_baseline", "check_baseline_keys", "parse_regression", "bench_gate", "gate_table",
    "regression_error", "compare", "uniform_twins", "parse_accuracy", "compare_table", "compare_notes", "compare_markdown",
    "write_compare_files", "plot_latency_vs_macs", "PLOT_FORMATS",
    # the pipeline, fine-tuning, serving
    "prune_export", "PipelineOptions", "PipelineResult", "run_pipeline", "CallbackReporter", "print_pipeline_summary",
    "finetune", "FinetuneConfig", "run_finetune", "triton_repo", "write_triton_repo", "TritonRepoReport", "parse_batch_sizes",
    # arguments, files, errors
    "model_argument_warnings", "folder_ignores", "model_folder", "is_path_like", "shadowing_folder", "is_factory",
    "trust_factories", "trust_scope", "check_location", "check_report_paths", "write_json_atomic",
    "IsodeployError", "ExitCode", "ParameterError",
]
