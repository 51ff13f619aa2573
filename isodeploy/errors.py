"""One exception type for every user-facing failure.

The CLI turns an :class:`IsodeployError` into a single ``error: ...`` line and a non-zero exit;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class IsodeployError(Exception):
    """A failure caused by the user's input or environment, with a one-line explanation.

    ``exit_code`` lets stages signal distinct outcomes (e.g. TensorRT missing) to scripts.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
