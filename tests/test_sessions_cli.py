"""`copilot sessions list|export|delete|end` and the one-line errors of `replay` on bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from copilot.events import Event, Note, Segment, SessionStarted, Tag
from copilot.session.store import SessionStore
from tests.conftest import run_copilot as copilot

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def stored(tmp_path):
    data = tmp_path / "data"
    store = SessionStore(data)
    sid = store.create_session(SessionStarted(title="Stored interview", mode="replay"))
    seg = Segment(speaker="candidate", start_ms=1000, end_ms=3500, text="how many users do we expect at peak")
    store.append(Event.of(sid, seg))
    store.append(
        Event.of(
            sid,
            Tag(
                tag="requirement_gathering",
                segment_ids=[seg.id],
                start_ms=1000,
                end_ms=3500,
                speaker="candidate",
                evidence="how many users",
                source="rules",
            ),
        )
    )
    store.append(Event.of(sid, Note(text="strong opening", at_ms=2000, by="interviewer")))
    store.close()
    return data, sid


def test_list(stored):
    data, sid = stored
    out = copilot("sessions", "list", "--json", data=data)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == [sid] and rows[0]["title"] == "Stored interview"
    assert rows[0]["status"] == "live" and rows[0]["last_seq"] == 4
    text = copilot("sessions", "list", data=data)
    assert sid in text.stdout and "Stored interview" in text.stdout


@pytest.mark.parametrize(
    "fmt, needle",
    [
        ("json", '"segment.final"'),
        ("md", "strong opening"),
        ("vtt", "WEBVTT"),
        ("srt", "00:00:01,000 --> 00:00:03,500"),
    ],
)
def test_export_to_file(stored, tmp_path, fmt, needle):
    data, sid = stored
    dest = tmp_path / "out" / f"s.{fmt}"
    dest.parent.mkdir()
    out = copilot("sessions", "export", sid, "--format", fmt, "-o", str(dest), data=data)
    assert out.returncode == 0, out.stderr
    body = dest.read_text()
    assert needle in body and "how many users" in body
    assert sorted(os.listdir(dest.parent)) == [dest.name]  # no temp file left behind
    stdout = copilot("sessions", "export", sid, "--format", fmt, data=data)
    if fmt == "json":  # carries its export time
        assert json.loads(stdout.stdout)["events"] == json.loads(body)["events"]
    else:
        assert stdout.stdout == body


def test_delete_and_unknown_ids(stored):
    data, sid = stored
    for args in (("export", "ses_nope"), ("delete", "ses_nope"), ("end", "ses_nope")):
        out = copilot("sessions", *args, data=data)
        assert out.returncode == 2 and out.stderr.strip() == "copilot: error: no session ses_nope"
    assert copilot("sessions", "delete", sid, data=data).returncode == 0
    assert json.loads(copilot("sessions", "list", "--json", data=data).stdout) == []


def test_replay_bad_input_is_one_line_and_leaves_no_session(tmp_path):
    data = tmp_path / "data"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cases = [
        ((str(tmp_path / "missing.wav"),), "missing.wav"),
        ((str(empty),), "empty.wav"),
        (("--demo", "--speed", "0"), "--speed"),
        (("--demo", "--rubric", "no_such_rubric"), "no_such_rubric"),
        (("--demo", "--model", "no_such_model"), "no_such_model"),
        ((), "FILE"),
    ]
    for args, needle in cases:
        out = copilot("replay", *args, "--no-browser", "--exit-when-done", data=data)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2, (args, out.stderr)
        assert len(lines) == 1 and lines[0].startswith("copilot: error: ") and needle in lines[0], (args, lines)
        with SessionStore(data) as store:  # opened (created if need be) after every case: still no session
            assert store.list_sessions() == [], args


@pytest.mark.slow
@pytest.mark.audio
def test_replay_with_llm_refines_through_a_real_http_server(tmp_path):
    """`--llm` and `--api-base` wire the LLM refiner into the live path (fake OpenAI-compatible server)."""
    from tests.fake_llm_server import FakeLLMServer, Reply
    from tests.test_live_llm import keyword_model

    data = tmp_path / "data"
    with FakeLLMServer() as server:
        server.default = Reply(content_fn=keyword_model)
        out = copilot(
            "replay",
            "--demo",
            "--no-pace",
            "--no-browser",
            "--exit-when-done",
            "--llm",
            "openai/fake-model",
            "--api-base",
            server.api_base,
            data=data,
        )
        calls = server.calls()
    assert out.returncode == 0, out.stderr
    assert calls >= 1
    store = SessionStore(data)
    (info,) = store.list_sessions()
    events = store.events(info["id"])
    assert events[0].data["config"]["llm"] == "openai/fake-model"
    by_llm = [
        e
        for e in events
        if (e.type == "tag.proposed" and e.data["source"].startswith("llm:"))
        or (e.type == "tag.updated" and e.data["by"].startswith("llm:"))
    ]
    assert by_llm, [e.type for e in events]
    assert events[-1].type == "session.ended" and events[-1].data["reason"] == "completed"
    # The invented quote never reaches the log.
    assert not any("rewrite everything in Rust" in json.dumps(e.data) for e in events)
