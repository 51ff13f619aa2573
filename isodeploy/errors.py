"""Re-export of :mod:`isodeploy.core.errors`, where exit codes and the user-error type live."""

from isodeploy.core.errors import ExitCode, IsodeployError, ParameterError

__all__ = ["ExitCode", "IsodeployError", "ParameterError"]
