"""Generate ``docs/api.md`` from the public API's docstrings: ``python -m isodeploy.api.reference``.

The reference is generated, never written by hand, so it cannot drift from the code; a test checks
that the committed file is what this module writes (``--check`` does the same for CI scripts).
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

HEADER = """## API reference

Generated from the docstrings by `python -m isodeploy.api.reference`; do not edit by hand.
Everything here is importable from `isodeploy.api` (the most used names also from `isodeploy`).
Bad arguments raise `IsodeployError` (exit code 2 at the CLI) with one line naming the argument.
"""


def _entry(name: str, obj: object) -> list[str]:
    if inspect.isclass(obj):
        kind = "class"
    elif callable(obj):
        kind = "function"
    else:
        return [f"### `{name}`", "", f"A constant: `{obj!r}`."[:300], ""]
    try:
        signature = re.sub(r"<function (\w+) at 0x[0-9a-f]+>", r"\1", str(inspect.signature(obj)))  # stable across runs
    except (TypeError, ValueError):
        signature = "(…)"
    doc = inspect.getdoc(obj) or "(no docstring)"
    home = getattr(obj, "__module__", "")
    return [f"### `{name}{signature}`" if kind == "function" else f"### class `{name}{signature}`", "",
            f"*{home}*", "", doc, ""]


def render() -> str:
    """The Markdown reference of every name in ``isodeploy.api.__all__``, in that order."""
    import isodeploy.api as api

    lines = [HEADER]
    for name in api.__all__:
        lines += _entry(name, getattr(api, name))
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(__file__).resolve().parents[2] / "docs" / "api.md"
    text = render()
    if "--check" in argv:
        current = out.read_text() if out.is_file() else ""
        if current != text:
            print(f"{out} is out of date: run 'python -m isodeploy.api.reference'", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
