"""Bounds on the shape of JSON text, checked before it is parsed.

Python's ``json`` parses nested arrays and objects by recursion: a document nested a few
thousand levels deep raises ``RecursionError`` (100,000 ``[`` fit in 100 kB), and one that
stays under the interpreter's limit still yields objects whose printing, copying or storing
recurses as deep. :func:`json_problem` reads the text once, without recursion, and reports
the first place where the nesting passes ``max_depth`` or a number has more than
``max_digits`` digits (``int()`` refuses more than 4,300 digits with a ``ValueError``), as
the path of keys and indexes that leads there (when it lies within the first
:data:`LOCATE_TOKENS` tokens: naming a place costs far more than detecting a problem).

Invariants: pure (no I/O); the scan is linear in the text and stops at the first problem;
for text that ``json`` accepts, the nesting seen here is the nesting ``json`` builds (strings
are skipped exactly as JSON delimits them), so a text that passes never makes ``json``
recurse deeper than ``max_depth``. Text that is not JSON is still scanned; ``json`` then
refuses it with its own error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate

__all__ = ["JsonProblem", "json_problem"]

# A JSON string, escapes skipped; one left open runs to the end of the text (``json``
# refuses it there), so that every quote starts a match and the scan stays linear: a
# pattern that failed on an open string would be retried from every later quote.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)'
_STRINGS = re.compile(_STRING, re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_DEPTH_CHANGE = {"[": 1, "{": 1, "]": -1, "}": -1}


@dataclass(frozen=True)
class JsonProblem:
    """Where a JSON text breaks a bound: the key/index path, the offset, and why."""

    path: tuple[str | int, ...]
    offset: int | None  # of the offending bracket or digit; None when not located
    reason: str

    @property
    def field(self) -> str:
        """The path as the API names fields (``identification.a.0``); ``body`` at the top."""
        return ".".join(str(part) for part in self.path) or "body"


class _Open:
    """An array or object not yet closed, and where in it the scan is."""

    __slots__ = ("index", "is_object", "key")

    def __init__(self, is_object: bool) -> None:
        self.is_object = is_object
        self.key: str | None = None  # objects: the raw string token of the current key
        self.index = 0  # arrays: the current element


def _key(token: str) -> str:
    try:
        key = json.loads(token)
    except ValueError:
        return token[1:-1]
    return key if isinstance(key, str) else token[1:-1]


# The slow pass names the place only within this many tokens (about 0.2 s); a problem
# further on is reported without a place (path ``()``, offset ``None``).
LOCATE_TOKENS = 200_000


def json_problem(text: str, *, max_depth: int, max_digits: int = 100) -> JsonProblem | None:
    """The first place where ``text`` nests deeper than ``max_depth`` arrays/objects or
    writes a number of more than ``max_digits`` digits; ``None`` if there is none.

    Depth counts containers: ``1`` and ``"a"`` have depth 0, ``[]`` and ``{}`` depth 1,
    ``{"a": [1]}`` depth 2.

    A first pass runs at C speed (strings dropped, the running depth of the brackets
    summed); only text that fails it is walked token by token to name the place."""
    outside_strings = _STRINGS.sub("", text)
    brackets = _NOT_BRACKETS.sub("", outside_strings)
    too_deep = bool(brackets) and max(accumulate(map(_DEPTH_CHANGE.__getitem__, brackets))) > (
        max_depth
    )
    long_number = re.search(f"[0-9]{{{max_digits + 1}}}", outside_strings) is not None
    if not (too_deep or long_number):
        return None
    found = _locate(text, max_depth, max_digits)
    if found is not None:
        return found
    if too_deep:
        return JsonProblem((), None, _too_deep(max_depth))
    return JsonProblem((), None, _too_long(max_digits))


def _too_deep(max_depth: int) -> str:
    return f"nested deeper than {max_depth} levels of arrays and objects"


def _too_long(max_digits: int) -> str:
    return f"a number of more than {max_digits} digits"


def _locate(text: str, max_depth: int, max_digits: int) -> JsonProblem | None:
    """The slow pass of :func:`json_problem`: the path to the first problem."""
    tokens = re.compile(_STRING + rf"|[\[\]{{}}:,]|[0-9]{{{max_digits + 1},}}", re.DOTALL)
    stack: list[_Open] = []
    last_string: str | None = None

    def path() -> tuple[str | int, ...]:
        parts: list[str | int] = []
        for container in stack:
            if not container.is_object:
                parts.append(container.index)
            elif container.key is not None:
                parts.append(_key(container.key))
        return tuple(parts)

    for count, match in enumerate(tokens.finditer(text)):
        if count >= LOCATE_TOKENS:
            return None
        token = match.group()
        first = token[0]
        if first == '"':
            last_string = token
        elif first in "[{":
            if len(stack) >= max_depth:
                return JsonProblem(path(), match.start(), _too_deep(max_depth))
            stack.append(_Open(first == "{"))
            last_string = None
        elif first in "]}":
            if stack:
                stack.pop()
        elif first == ":":
            if stack and stack[-1].is_object:
                stack[-1].key = last_string
        elif first == ",":
            if stack and stack[-1].is_object:
                stack[-1].key = None
            elif stack:
                stack[-1].index += 1
        else:
            return JsonProblem(path(), match.start(), _too_long(max_digits))
    return None
