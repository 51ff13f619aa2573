"""The public API: what the CLI's commands call, and what a Python user calls, with the same
defaults and the same one-line :class:`~isodeploy.core.errors.IsodeployError` messages.

Models and pruning live in :mod:`isodeploy.api.models`, export / verify in
:mod:`isodeploy.api.deploy`, bench and its regression gate in :mod:`isodeploy.api.benchmark`,
compare in :mod:`isodeploy.api.comparison`. ``docs/api.md`` is generated from the docstrings
(``python -m isodeploy.api.reference``).
"""

from isodeploy.api.benchmark import (bench, bench_gate, bench_markdown, bench_notes, bench_payload, bench_settings, bench_table,
                                     check_baseline_keys, gate_table, load_baseline, parse_regression, progress_reporter, ratio_table,
                                     regression_error, split_runtimes, write_bench_files)
from isodeploy.api.comparison import (PLOT_FORMATS, compare, compare_markdown, compare_notes, compare_table, parse_accuracy,
                                      plot_latency_vs_macs, uniform_twins, write_compare_files)
from isodeploy.api.deploy import export_onnx, verify
from isodeploy.api.models import RATIO_KINDS, analyze, create_model, default_preset, example_inputs, load, prune, prune_config, save
from isodeploy.core.errors import ExitCode, IsodeployError, ParameterError

__all__ = ["ExitCode", "IsodeployError", "PLOT_FORMATS", "ParameterError", "RATIO_KINDS", "analyze", "bench", "bench_gate", "bench_markdown",
           "bench_notes", "bench_payload", "bench_settings", "bench_table", "check_baseline_keys", "compare", "compare_markdown",
           "compare_notes", "compare_table", "create_model", "default_preset", "example_inputs", "export_onnx", "gate_table", "load",
           "load_baseline", "parse_accuracy", "parse_regression", "plot_latency_vs_macs", "progress_reporter", "prune", "prune_config",
           "ratio_table", "regression_error", "save", "split_runtimes", "uniform_twins", "verify", "write_bench_files",
           "write_compare_files"]
