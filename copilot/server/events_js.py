"""The event vocabulary for the pages, generated once from `copilot.events`: `web/events.js`.

The pages import their event type names, control kinds and tag statuses from that module instead
of spelling them out; `tests/test_fold_cases.py` checks that the committed file equals what this
generates. Regenerate with `python -m copilot.server.events_js > web/events.js`.
"""

from __future__ import annotations

import json
import sys
from typing import get_args

from copilot.events import CONTROL_KINDS, PERSISTED_CONTROL, SCHEMA_VERSION, EventType, TagStatus
from copilot.session.fold import NOT_STANDING


def _const(name: str) -> str:
    return name.replace(".", "_").upper()


def _frozen(name: str, values: list[str], doc: str) -> str:
    body = "".join(f"  {_const(v)}: {json.dumps(v)},\n" for v in values)
    return f"// {doc}\nexport const {name} = Object.freeze({{\n{body}}});\n"


def render() -> str:
    """The text of `web/events.js`."""
    parts = [
        "// Generated from copilot/events.py by `python -m copilot.server.events_js > web/events.js`; do not edit.\n"
        "// tests/test_fold_cases.py fails when this file and the Python vocabulary differ.\n",
        f"export const SCHEMA_VERSION = {SCHEMA_VERSION};\n",
        _frozen("EVENT", list(get_args(EventType)), "Event types (`type` of the envelope)."),
        _frozen("CONTROL", list(CONTROL_KINDS), "Kinds of `control` events (`data.kind`)."),
        _frozen("TAG_STATUS", list(get_args(TagStatus)), "A tag's status."),
        "// Control kinds the store keeps (the others arrive with `seq: null`).\n"
        f"export const PERSISTED_CONTROL = Object.freeze({json.dumps(sorted(PERSISTED_CONTROL))});\n",
        "// Statuses of tags that do not stand (not shown as live tags, not counted).\n"
        f"export const NOT_STANDING = Object.freeze({json.dumps(sorted(NOT_STANDING))});\n",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
