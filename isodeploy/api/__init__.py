"""The public API: what the CLI's commands call, and what a Python user calls, with the same
defaults and the same one-line :class:`~isodeploy.core.errors.IsodeployError` messages.

Models and pruning live in :mod:`isodeploy.api.models`, export / verify in :mod:`isodeploy.api.deploy`,
bench and its regression gate in :mod:`isodeploy.api.benchmark`, compare in
:mod:`isodeploy.api.comparison`, ``prune`` to a folder in :mod:`isodeploy.api.pruning`, the whole
pipeline in :mod:`isodeploy.api.pipeline`, fine-tuning in :mod:`isodeploy.api.train`, Triton
repositories in :mod:`isodeploy.api.serve`, report files in :mod:`isodeploy.api.files` and MODEL
strings in :mod:`isodeploy.api.model_args`; what ``isodeploy verify`` runs in :mod:`isodeploy.api.verification`,
export's defaults in :mod:`isodeploy.api.export`, TensorRT engines in :mod:`isodeploy.api.engine`, channel
groups and presets in :mod:`isodeploy.api.inspect`, latency budgets in :mod:`isodeploy.api.latency`. A name loads its module on first use, so the CLI
starts without torch; ``docs/api.md`` is generated from the docstrings (``python -m isodeploy.api.reference``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → (module, name there): the one table of what the API exports
_WHERE: dict[str, tuple[str, str]] = {
    "LatencyBudget": ("isodeploy.api.latency", "LatencyBudget"),
    "LatencySettings": ("isodeploy.api.latency", "LatencySettings"),
    "latency_settings": ("isodeploy.api.latency", "latency_settings"),
    "parse_latency_budget": ("isodeploy.api.latency", "parse_latency_budget"),
    "bench": ("isodeploy.api.benchmark", "bench"),
    "bench_gate": ("isodeploy.api.benchmark", "bench_gate"),
    "bench_markdown": ("isodeploy.api.benchmark", "bench_markdown"),
    "bench_notes": ("isodeploy.api.benchmark", "bench_notes"),
    "bench_payload": ("isodeploy.api.benchmark", "bench_payload"),
    "bench_settings": ("isodeploy.api.benchmark", "bench_settings"),
    "bench_table": ("isodeploy.api.benchmark", "bench_table"),
    "check_baseline_keys": ("isodeploy.api.benchmark", "check_baseline_keys"),
    "gate_table": ("isodeploy.api.benchmark", "gate_table"),
    "load_baseline": ("isodeploy.api.benchmark", "load_baseline"),
    "parse_regression": ("isodeploy.api.benchmark", "parse_regression"),
    "progress_reporter": ("isodeploy.api.benchmark", "progress_reporter"),
    "ratio_table": ("isodeploy.api.benchmark", "ratio_table"),
    "regression_error": ("isodeploy.api.benchmark", "regression_error"),
    "split_runtimes": ("isodeploy.api.benchmark", "split_runtimes"),
    "write_bench_files": ("isodeploy.api.benchmark", "write_bench_files"),
    "PLOT_FORMATS": ("isodeploy.api.comparison", "PLOT_FORMATS"),
    "compare": ("isodeploy.api.comparison", "compare"),
    "compare_markdown": ("isodeploy.api.comparison", "compare_markdown"),
    "compare_notes": ("isodeploy.api.comparison", "compare_notes"),
    "compare_table": ("isodeploy.api.comparison", "compare_table"),
    "parse_accuracy": ("isodeploy.api.comparison", "parse_accuracy"),
    "plot_latency_vs_macs": ("isodeploy.api.comparison", "plot_latency_vs_macs"),
    "uniform_twins": ("isodeploy.api.comparison", "uniform_twins"),
    "write_compare_files": ("isodeploy.api.comparison", "write_compare_files"),
    "export_onnx": ("isodeploy.api.deploy", "export_onnx"),
    "verify": ("isodeploy.api.deploy", "verify"),
    "EngineMeta": ("isodeploy.api.engine", "EngineMeta"),
    "build_engine": ("isodeploy.api.engine", "build_engine"),
    "default_engine_path": ("isodeploy.api.engine", "default_engine_path"),
    "check_export_options": ("isodeploy.api.export", "check_export_options"),
    "default_onnx_path": ("isodeploy.api.export", "default_onnx_path"),
    "export_report_dict": ("isodeploy.api.export", "export_report_dict"),
    "check_location": ("isodeploy.api.files", "check_location"),
    "check_report_paths": ("isodeploy.api.files", "check_report_paths"),
    "write_json_atomic": ("isodeploy.api.files", "write_json_atomic"),
    "ChannelGroups": ("isodeploy.api.inspect", "ChannelGroups"),
    "Presets": ("isodeploy.api.inspect", "Presets"),
    "channel_groups": ("isodeploy.api.inspect", "channel_groups"),
    "list_presets": ("isodeploy.api.inspect", "list_presets"),
    "load_presets": ("isodeploy.api.inspect", "load_presets"),
    "recorded_frozen": ("isodeploy.api.inspect", "recorded_frozen"),
    "as_loaded": ("isodeploy.api.loaded", "as_loaded"),
    "folder_ignores": ("isodeploy.api.model_args", "folder_ignores"),
    "is_factory": ("isodeploy.core.trust", "is_factory"),
    "is_path_like": ("isodeploy.api.model_args", "is_path_like"),
    "model_argument_warnings": ("isodeploy.api.model_args", "model_argument_warnings"),
    "model_folder": ("isodeploy.api.model_args", "model_folder"),
    "shadowing_folder": ("isodeploy.api.model_args", "shadowing_folder"),
    "trust_factories": ("isodeploy.core.trust", "trust_factories"),
    "trust_scope": ("isodeploy.core.trust", "trust_scope"),
    "RATIO_KINDS": ("isodeploy.api.models", "RATIO_KINDS"),
    "analyze": ("isodeploy.api.models", "analyze"),
    "create_model": ("isodeploy.api.models", "create_model"),
    "default_preset": ("isodeploy.api.models", "default_preset"),
    "example_inputs": ("isodeploy.api.models", "example_inputs"),
    "load": ("isodeploy.api.models", "load"),
    "prune": ("isodeploy.api.models", "prune"),
    "prune_config": ("isodeploy.api.models", "prune_config"),
    "save": ("isodeploy.api.models", "save"),
    "CallbackReporter": ("isodeploy.api.pipeline", "CallbackReporter"),
    "PipelineOptions": ("isodeploy.api.pipeline", "PipelineOptions"),
    "PipelineResult": ("isodeploy.api.pipeline", "PipelineResult"),
    "print_pipeline_summary": ("isodeploy.api.pipeline", "print_summary"),
    "prune_export": ("isodeploy.api.pipeline", "prune_export"),
    "run_pipeline": ("isodeploy.api.pipeline", "run_pipeline"),
    "PruneRun": ("isodeploy.api.pruning", "PruneRun"),
    "parse_macs": ("isodeploy.api.pruning", "parse_macs"),
    "print_prune_summary": ("isodeploy.api.pruning", "print_summary"),
    "prune_to_folder": ("isodeploy.api.pruning", "prune_to_folder"),
    "TritonRepoReport": ("isodeploy.api.serve", "TritonRepoReport"),
    "parse_batch_sizes": ("isodeploy.api.serve", "parse_batch_sizes"),
    "triton_repo": ("isodeploy.api.serve", "triton_repo"),
    "write_triton_repo": ("isodeploy.api.serve", "write_triton_repo"),
    "FinetuneConfig": ("isodeploy.api.train", "FinetuneConfig"),
    "finetune": ("isodeploy.api.train", "finetune"),
    "run_finetune": ("isodeploy.api.train", "run_finetune"),
    "Gates": ("isodeploy.api.verification", "Gates"),
    "VerifyOutcome": ("isodeploy.api.verification", "VerifyOutcome"),
    "VerifyReport": ("isodeploy.api.verification", "VerifyReport"),
    "check_verify_options": ("isodeploy.api.verification", "check_verify_options"),
    "verify_artifact": ("isodeploy.api.verification", "verify_artifact"),
    "ExitCode": ("isodeploy.core.errors", "ExitCode"),
    "IsodeployError": ("isodeploy.core.errors", "IsodeployError"),
    "ParameterError": ("isodeploy.core.errors", "ParameterError"),
}

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


def __getattr__(name: str) -> Any:
    """The value behind a public name, its module imported on first use. Not cached here, so the name
    always means what its module holds now (a test that patches the module is seen, and undone)."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'isodeploy.api' has no attribute '{name}'")
    return getattr(importlib.import_module(where[0]), where[1])


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
