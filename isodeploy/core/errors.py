"""The one exit-code enum and the one exception type for every user-facing failure.

The CLI turns an :class:`IsodeployError` into a single ``error: ...`` line and ``exit_code``;
scripts and CI branch on the codes, so they are fixed here and nowhere else.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every ``isodeploy`` command (docs/reliability.md)."""

    OK = 0
    NUMERIC = 1  # a numeric check (verify gate, regression gate) failed
    BAD_INPUT = 2  # bad arguments, files or environment; also usage errors
    NO_TENSORRT = 3  # TensorRT is not installed or does not load
    NO_CUDA = 4  # no CUDA GPU is visible


class IsodeployError(Exception):
    """A failure caused by the user's input or environment, with a one-line explanation.

    ``exit_code`` lets stages signal distinct outcomes (e.g. TensorRT missing) to scripts.
    """

    def __init__(self, message: str, exit_code: int = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = int(exit_code)


class ParameterError(IsodeployError):
    """A bad value for one parameter. The message names it as the Python API spells it
    (``ranking= must be …``); :meth:`for_cli` spells it as the command-line flag (``--ranking must be …``)."""

    def __init__(self, param: str, message: str, exit_code: int = ExitCode.BAD_INPUT, flag: str | None = None) -> None:
        self.param = param
        self.flag = flag  # the command-line flag, where it is not --param (set by commands/common.py flags_as)
        super().__init__(f"{param}= {message}", exit_code)

    def for_cli(self) -> str:
        flag = self.flag or f"--{self.param.replace('_', '-')}"
        return str(self).replace(f"{self.param}= ", f"{flag} ", 1)


class CliWorded(IsodeployError):
    """An error whose fix is worded differently for the API and the CLI (``trust=True`` vs
    ``--trust-factory``): ``str()`` is the API's line, :meth:`for_cli` the command line's."""

    def __init__(self, message: str, cli_message: str, exit_code: int = ExitCode.BAD_INPUT) -> None:
        super().__init__(message, exit_code)
        self.cli_message = cli_message

    def for_cli(self) -> str:
        return self.cli_message
