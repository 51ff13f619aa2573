"""Report files and output folders, as every command checks and writes them.

Re-exported from :mod:`isodeploy.core` (they already are the right public functions):

* :func:`check_location` — a report path (``--json``) can be written at all; cheap, so the CLI runs it
  while parsing the command line.
* :func:`check_report_paths` — a report path is not one of the run's own inputs or outputs, and can
  be written; called before any long work.
* :func:`write_json_atomic` — write a JSON report (dataclasses included) atomically, never through a link.
"""

from __future__ import annotations

import warnings
from typing import Callable

from isodeploy.core.report_paths import check_location, check_report_paths
from isodeploy.core.safe_write import write_json_atomic

__all__ = ["Warn", "check_location", "check_report_paths", "warn_python", "write_json_atomic"]

Warn = Callable[[str], None]  # where a function's advisory lines go (the CLI: one "warning:" line on stderr)


def warn_python(message: str) -> None:
    """The default ``warn=`` of the api's functions: a :class:`UserWarning` (the run goes on)."""
    warnings.warn(message, UserWarning, stacklevel=3)
