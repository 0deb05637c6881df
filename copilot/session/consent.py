"""Consent before capture: the notice the candidate is given, and the stored confirmation.

Recording starts only after the interviewer confirms that the candidate was told and agreed;
the confirmation is a `consent.confirmed` event (who, the notice text; when is the event's ts).
The notice is configurable: `--consent-notice`, else COPILOT_CONSENT_NOTICE, else the default.
"""

from __future__ import annotations

import getpass
import os
from typing import Literal

from copilot.events import Consent, Event
from copilot.session.log import SessionLog

DEFAULT_NOTICE = (
    "This interview is transcribed live on the interviewer's computer to help them take notes. "
    "The audio and the transcript stay on that computer and are not shared."
)
MAX_NOTICE = 2000
MAX_NAME = 80


def consent_notice(override: str | None = None) -> str:
    text = (override or os.environ.get("COPILOT_CONSENT_NOTICE") or DEFAULT_NOTICE).strip()
    return text[:MAX_NOTICE]


def default_confirmer() -> str:
    try:
        return getpass.getuser() or "interviewer"
    except Exception:  # no user name in this environment: not worth failing for
        return "interviewer"


def record_consent(
    log: SessionLog, session_id: str, *, by: str, notice: str, method: Literal["browser", "flag", "terminal"]
) -> Event:
    by = " ".join(by.split())[:MAX_NAME] or "interviewer"
    return log.record_payload(session_id, Consent(by=by, notice=notice, method=method))


def find_consent(log: SessionLog, session_id: str) -> Consent | None:
    """The session's latest confirmation, if any (a continued session keeps its consent)."""
    found = None
    for ev in log.store.events(session_id):
        if ev.type == "consent.confirmed":
            found = ev.payload()
    return found if isinstance(found, Consent) else None
