"""Consent for device capture: `--consent-confirmed`, or a yes/no question on the terminal."""

from __future__ import annotations

import sys
from typing import Callable, Literal, TextIO

from copilot.errors import CopilotError
from copilot.session.consent import default_confirmer


def confirm_consent(
    notice: str, *, confirmed: bool, ask: Callable[[str], str] | None = None, stdin: TextIO | None = None
) -> tuple[Literal["flag", "terminal"], str]:
    """(method, who) once the interviewer confirmed; a CopilotError (nothing captured) otherwise."""
    who = default_confirmer()
    if confirmed:
        return "flag", who
    stdin = stdin or sys.stdin
    if ask is None:
        if not stdin.isatty():
            raise CopilotError(
                "recording needs the candidate's consent: confirm it at the terminal, or pass "
                "--consent-confirmed once they were told and agreed"
            )
        ask = input
    print(f"Tell the candidate before recording:\n  {notice}", file=sys.stderr, flush=True)
    try:
        answer = ask("Was the candidate told, and did they agree? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise CopilotError("not recording: the candidate's consent was not confirmed")
    return "terminal", who
