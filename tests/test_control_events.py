"""Control events: typed by `kind`, never by message text; only the audio clock is stored."""

from __future__ import annotations

import pytest

from copilot.events import AsrLag, AudioClock, CaughtUp, Event, SessionStarted
from copilot.session.store import SessionStore


def test_kinds_are_typed_and_only_the_audio_clock_is_persisted(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted())
    clock = Event.of(sid, AudioClock(audio_t0=1234.5))
    lag = Event.of(sid, AsrLag(asr_lag_ms=300, audio_queue=2))
    caught = Event.of(sid, CaughtUp(last_seq=7, sent=6))
    assert [e.type for e in (clock, lag, caught)] == ["control"] * 3
    assert [e.persisted for e in (clock, lag, caught)] == [True, False, False]
    stored = store.append(clock)
    (back,) = [e for e in store.events(sid) if e.type == "control"]
    assert back.seq == stored.seq == 2
    payload = back.payload()
    assert isinstance(payload, AudioClock) and payload.audio_t0 == 1234.5
    assert isinstance(Event.model_validate_json(lag.model_dump_json()).payload(), AsrLag)
    for ephemeral in (lag, caught):
        with pytest.raises(ValueError, match="never stored"):
            store.append(ephemeral)
    assert store.last_seq(sid) == 2
    with pytest.raises(ValueError, match="unknown control kind 'bogus'"):
        Event(session_id=sid, type="control", data={"kind": "bogus"}).payload()
    store.close()
