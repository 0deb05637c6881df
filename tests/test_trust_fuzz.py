"""Property-based fuzzing (hypothesis) of everything the copilot reads from outside: websocket
messages (through the real served app), tag files (into a real SQLite store) and rubric YAML.

Whatever the input: no traceback, no 500, a one-line refusal, the event count unchanged on refusal,
and the websocket stays open. Bounded: fixed example counts, derandomized, so `make test` stays quick
and repeatable.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from copilot.errors import CopilotError
from copilot.events import Event, Segment, SessionStarted, Tag
from copilot.review.tags_io import TagFileError, import_tags
from copilot.server.app import create_app
from copilot.server.messages import BadMessage, parse_message
from copilot.server.runner import ServerThread
from copilot.session.bus import Bus
from copilot.session.log import SessionLog
from copilot.session.store import SessionStore
from copilot.tagging.rubric import parse_rubric
from tests.review_fixtures import ALICE, build_session, rater_file

TOKEN = "fuzz-token"
RUBRIC = {"requirement_gathering", "tradeoff_articulation", "steering_decision"}


def fuzz(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=10), kids, max_size=4)),
    max_leaves=12,
)
OPS = ["confirm", "reject", "edit", "add_tag", "note"]
FIELDS = ["op", "tag_id", "tag", "evidence", "at_ms", "segment_ids", "text"]
ops = st.builds(
    lambda op, extra: {"op": op, **extra},
    st.sampled_from(OPS + ["dance", ""]),
    st.dictionaries(
        st.sampled_from(FIELDS + ["extra"]),
        st.one_of(json_values, st.sampled_from(["tag_fz", "requirement_gathering", "seg_fz"])),
        max_size=4,
    ),
)
raw_messages = st.one_of(
    ops.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=5000).map(lambda n: "[" * n),
    st.integers(min_value=1, max_value=4000).map(lambda n: '{"op": "note", "text": "x", "at_ms": ' + "9" * n + "}"),
)


def _one_line(msg: str) -> None:
    assert msg and "\n" not in msg and "Traceback" not in msg and len(msg) < 400, msg


@fuzz(300)
@given(raw=raw_messages)
def test_parse_message_refuses_in_one_line_or_returns_an_op(raw):
    try:
        op = parse_message(raw)
    except BadMessage as exc:
        _one_line(str(exc))
    else:
        assert op.op in OPS


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = SessionStore(tmp_path_factory.mktemp("fuzz") / "data")
    bus = Bus()
    log = SessionLog(store, bus)
    sid = store.create_session(SessionStarted(title="fuzz", rubric="default"))
    seg = Segment(id="seg_fz", speaker="candidate", start_ms=0, end_ms=900, text="who are the users")
    log.record(Event.of(sid, seg))
    log.record(
        Event.of(
            sid,
            Tag(
                id="tag_fz",
                tag="requirement_gathering",
                segment_ids=["seg_fz"],
                start_ms=0,
                end_ms=900,
                evidence="who are the users",
            ),
        )
    )
    app = create_app(store, bus, TOKEN, session_log=log)
    with ServerThread(app) as srv:
        with connect(
            f"ws://127.0.0.1:{srv.port}/ws/sessions/{sid}?after=0&token={TOKEN}", open_timeout=5, max_size=None
        ) as ws:
            yield ws, store, sid
    store.close()


def _next_reply(ws) -> dict:
    """The reply to one message: an error status, or the stored event it became."""
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] == "status" and msg["data"].get("level") == "error":
            return msg
        if msg.get("seq") is not None and msg["type"] in ("tag.updated", "tag.added", "note.added"):
            return msg


@fuzz(80)
@given(raw=raw_messages)
def test_websocket_fuzz_never_breaks_the_connection(served, raw):
    ws, store, sid = served
    before = store.last_seq(sid)
    ws.send(raw)
    reply = _next_reply(ws)
    if reply["type"] == "status":
        _one_line(reply["data"]["message"])
        assert store.last_seq(sid) == before  # refused: nothing written
    else:
        assert reply["seq"] == before + 1 == store.last_seq(sid)  # accepted: exactly one event


tag_fields = st.sampled_from(["id", "tag", "start_ms", "end_ms", "segment_ids", "speaker", "evidence", "note", "bogus"])
top_fields = st.sampled_from(
    ["format", "version", "session_id", "rater", "rubric", "exported_at", "coverage", "tags", "bogus"]
)


@pytest.fixture(scope="module")
def tag_session(tmp_path_factory):
    store = SessionStore(tmp_path_factory.mktemp("fuzz-tags") / "data")
    sid = build_session(store)
    yield store, sid
    store.close()


@fuzz(80)
@given(data=st.data())
def test_tag_file_fuzz_is_all_or_nothing_with_one_line_errors(tag_session, data):
    store, sid = tag_session
    doc = rater_file(sid, data.draw(st.sampled_from(["alice", "bob", "carol"])), ALICE)
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        tags = doc.get("tags")
        if isinstance(tags, list) and tags and data.draw(st.booleans()):
            t = tags[data.draw(st.integers(min_value=0, max_value=len(tags) - 1))]
            if isinstance(t, dict):
                t[data.draw(tag_fields)] = data.draw(json_values)
        else:
            doc[data.draw(top_fields)] = data.draw(json_values)
    text = json.dumps(doc)
    if data.draw(st.booleans()):  # and sometimes break the JSON itself
        cut = data.draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:cut] + data.draw(st.text(max_size=5)) + text[cut:]
    before = store.last_seq(sid)
    try:
        written = import_tags(store, sid, text, RUBRIC)
    except TagFileError as exc:
        _one_line(str(exc))
        assert store.last_seq(sid) == before
    else:
        assert store.last_seq(sid) == before + len(written)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)),
    max_leaves=10,
)


@fuzz(80)
@given(data=st.data())
def test_rubric_yaml_fuzz_loads_or_refuses_in_one_line(data):
    import yaml

    from copilot.tagging.rubric import resolve_rubric_path

    base = yaml.safe_load(resolve_rubric_path("default").read_text())
    choice = data.draw(st.integers(min_value=0, max_value=3))
    if choice == 0:  # a field replaced
        key = data.draw(st.sampled_from(list(base) + ["bogus"]))
        base[key] = data.draw(yaml_values)
        text = yaml.safe_dump(base)
    elif choice == 1:  # a tag's field replaced
        tag = base["tags"][data.draw(st.integers(min_value=0, max_value=len(base["tags"]) - 1))]
        tag[data.draw(st.sampled_from(list(tag) + ["bogus"]))] = data.draw(yaml_values)
        text = yaml.safe_dump(base)
    elif choice == 2:  # raw text
        text = data.draw(st.text(max_size=300))
    else:  # hostile shapes: deep nesting, alias bombs
        n = data.draw(st.integers(min_value=50, max_value=3000))
        text = data.draw(
            st.sampled_from(
                [
                    "[" * n + "]" * n,
                    "a: " + "{b: " * n + "1" + "}" * n,
                    'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
                    + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
                    + "id: x\ntags: *i\n",
                ]
            )
        )
    try:
        parse_rubric(text, "fuzz.yaml")
    except CopilotError as exc:
        _one_line(str(exc))
