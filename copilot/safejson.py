"""JSON from outside the process (tag files, websocket messages), parsed within bounds.

`json.loads` alone turns hostile input into tracebacks: deep nesting raises RecursionError, an
integer of more than 4,300 digits raises a bare ValueError, and NaN/Infinity are accepted. Here
each of those is a `JSONRefused` with a one-line reason, and nesting is capped well below where
the parser or a validator could recurse too deep.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 16  # no document the copilot reads nests deeper than 4


class JSONRefused(ValueError):
    """Input that is not JSON the copilot accepts; the message is one line."""


def _no_constants(name: str) -> Any:
    raise JSONRefused(f"{name} is not a number JSON allows")


def loads_bounded(raw: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `raw`; refuse bad JSON, NaN/Infinity, huge integers and nesting beyond `max_depth`."""
    # Depth first, on the text: the C parser's own guard follows the interpreter's recursion limit,
    # which other libraries raise, so "[" x 8000 could otherwise come back as a different error.
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONRefused("not UTF-8 text") from None
    else:
        text = raw
    if text_depth(text) > max_depth:
        raise JSONRefused(f"nested deeper than {max_depth} levels")
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except JSONRefused:
        raise
    except json.JSONDecodeError as exc:
        raise JSONRefused(f"not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise JSONRefused("not UTF-8 text") from None
    except RecursionError:  # the C parser's own guard, near 1,000 levels
        raise JSONRefused(f"nested deeper than {max_depth} levels") from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise JSONRefused("a number has too many digits") from None
    if depth(obj) > max_depth:  # validators recurse too: stop well before they could
        raise JSONRefused(f"nested deeper than {max_depth} levels")
    return obj


def depth(obj: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, `[]` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        d += 1
        deepest = max(deepest, d)
        stack.extend((child, d) for child in item if isinstance(child, (dict, list)))
    return deepest


def text_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text (strings skipped), in one pass without parsing it."""
    deepest = depth_now = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth_now += 1
            if depth_now > deepest:
                deepest = depth_now
        elif ch in "]}":
            depth_now -= 1
    return deepest
