"""A small reader for protobuf text format (``config.pbtxt``), schema-free.

Triton reads ``config.pbtxt`` with protobuf's text parser. isodeploy must check hand-edited files too, without
requiring Triton's generated protobuf classes at run time, so this reads the text format into plain dicts:
every field maps to a *list* of values (protobuf fields may repeat), messages become dicts, enum names become
:class:`Ident` (a ``str`` subclass, so ``TYPE_FP32`` and ``"TYPE_FP32"`` stay distinguishable).
"""

from __future__ import annotations

import re
from typing import Union

from isodeploy.core.errors import IsodeployError


class Ident(str):
    """A bare identifier in the text: an enum value or ``true``/``false``."""


Value = Union[str, int, float, Ident, dict]
Message = dict  # field name -> list[Value]

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)[fF]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}\[\]<>:,;])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "0": "\0"}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise IsodeployError(f"config.pbtxt: unexpected character {text[pos]!r} at line {_line(text, pos)}")
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group(), _line(text, pos)))
        pos = m.end()
    return out


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise IsodeployError(f"config.pbtxt: unexpected end of file{f', expected {want!r}' if want else ''}")
        if want is not None and tok[1] != want:
            raise IsodeployError(f"config.pbtxt: expected {want!r} at line {tok[2]}, found {tok[1]!r}")
        self.i += 1
        return tok

    def message(self, close: str | None) -> Message:
        fields: Message = {}
        while True:
            tok = self.peek()
            if tok is None:
                if close:
                    self.take(close)
                return fields
            if close and tok[1] == close:
                self.i += 1
                return fields
            kind, name, line = self.take()
            if kind != "ident":
                raise IsodeployError(f"config.pbtxt: expected a field name at line {line}, found {name!r}")
            colon = self.peek() is not None and self.peek()[1] == ":"
            if colon:
                self.i += 1
            fields.setdefault(name, []).extend(self.values(name, colon))
            if self.peek() is not None and self.peek()[1] in ",;":
                self.i += 1

    def values(self, name: str, colon: bool) -> list[Value]:
        tok = self.peek()
        if tok is None:
            raise IsodeployError(f"config.pbtxt: field '{name}' has no value")
        if tok[1] == "[":
            self.i += 1
            items: list[Value] = []
            while self.peek() is not None and self.peek()[1] != "]":
                items.append(self.single(name, True))
                if self.peek() is not None and self.peek()[1] == ",":
                    self.i += 1
            self.take("]")
            return items
        return [self.single(name, colon)]

    def single(self, name: str, colon: bool) -> Value:
        kind, text, line = self.take()
        if text in "{<":
            return self.message("}" if text == "{" else ">")
        if not colon:
            raise IsodeployError(f"config.pbtxt: field '{name}' at line {line} needs ':' before its value")
        if kind == "string":
            while self.peek() is not None and self.peek()[0] == "string":  # adjacent strings concatenate
                text = text[:-1] + self.take()[1][1:]
            return _unquote(text)
        if kind == "number":
            body = text.rstrip("fF") if not text.lower().startswith(("0x", "-0x", "+0x")) else text
            try:
                return int(body, 0)
            except ValueError:
                return float(body)
        if kind == "ident":
            return Ident(text)
        raise IsodeployError(f"config.pbtxt: unexpected {text!r} at line {line} in field '{name}'")


def parse_pbtxt(text: str) -> Message:
    """Parse protobuf text format into ``{field: [values]}``; a syntax error raises one-line IsodeployError."""
    return _Parser(text).message(None)


def field_value(msg: Message, name: str, default=None):
    """The value of a non-repeated field (protobuf keeps the last one given), or ``default``."""
    values = msg.get(name) or []
    return values[-1] if values else default
