"""One fold, two implementations: tests/data/fold_cases.json against the Python fold (directly and
through the real SQLite store's folded view) and against the panel's JS (`TagBook` / `TurnBook` in
the real web/common.js, in chromium). Both must give the state each case expects.

Also: the actor rule (`copilot.actors`, mirrored in JS) on the same shared cases, and the
generated web/events.js equals what `copilot.server.events_js` renders from `copilot.events`.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from copilot import actors, config
from copilot.events import Event, SessionStarted
from copilot.server.events_js import render
from copilot.session.fold import fold
from copilot.session.store import SessionStore
from tests.conftest import REPO

CASES_PATH = REPO / "tests" / "data" / "fold_cases.json"
DOC = json.loads(CASES_PATH.read_text())
CASES = DOC["cases"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SID = "ses_foldcases"


def _events(case: dict[str, Any]) -> list[Event]:
    return [Event(session_id=SID, seq=i + 1, type=e["type"], data=e["data"]) for i, e in enumerate(case["events"])]


def _mismatches(case: dict[str, Any], tags: dict[str, dict[str, Any]], turns: list[dict[str, Any]]) -> list[str]:
    """What differs between a folded state and the case's expectation (only the fields it names)."""
    expect = case["expect"]
    bad = []
    for tid, fields in expect.get("tags", {}).items():
        got = tags.get(tid)
        if got is None:
            bad.append(f"tag {tid} missing")
            continue
        for key, want in fields.items():
            if got.get(key) != want:
                bad.append(f"tag {tid}.{key}: got {got.get(key)!r}, want {want!r}")
    for tid in expect.get("absent", []):
        if tid in tags:
            bad.append(f"tag {tid} should not exist")
    if "turns" in expect:
        want_turns = expect["turns"]
        if [t["id"] for t in turns] != [t["id"] for t in want_turns]:
            bad.append(f"turn order: got {[t['id'] for t in turns]}, want {[t['id'] for t in want_turns]}")
        else:
            for got, want in zip(turns, want_turns):
                for key, value in want.items():
                    if got.get(key) != value:
                        bad.append(f"turn {want['id']}.{key}: got {got.get(key)!r}, want {value!r}")
    return bad


def test_the_cases_cover_what_the_issue_names():
    names = {c["name"] for c in CASES}
    for needed in (
        "confirmed, then a late LLM edit",
        "retracted",
        "rejected then machine update",
        "unknown tag update",
        "bare-name by from an old log",
        "turn revision 0 then 1",
    ):
        assert needed in names
    assert any("then a machine move" in n and "edited by a person" in n for n in names)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_fold(case):
    view = fold(_events(case))
    tags = {t.id: {**t.to_json(), "standing": t.standing} for t in view.tags}
    turns = [t.turn.model_dump(mode="json") for t in view.turns]
    assert _mismatches(case, tags, turns) == []
    # The active tags are exactly the standing ones; a retraction is not a rejection.
    assert {t.id for t in view.active_tags()} == {t.id for t in view.tags if t.status not in ("rejected", "retracted")}


def test_python_fold_through_the_store(tmp_path):
    """The REST view (`SessionStore.get_session`) is the same fold, after a round trip through SQLite."""
    store = SessionStore(tmp_path)
    for case in CASES:
        sid = store.create_session(SessionStarted(title=case["name"]))
        store.append_many([Event(session_id=sid, type=e["type"], data=e["data"]) for e in case["events"]])
        got = store.get_session(sid)
        tags = {t["id"]: t for t in got["tags"]}
        assert _mismatches(case, tags, got["turns"]) == [], case["name"]
    store.close()


@pytest.mark.parametrize("row", DOC["actors"], ids=[r["actor"] or "(empty)" for r in DOC["actors"]])
def test_actor_rule(row):
    assert actors.is_human(row["actor"]) is row["human"]
    assert actors.canonical(row["actor"]) == row["canonical"]
    assert actors.display_name(row["actor"]) == row["name"]


def test_actor_groups_and_raters():
    assert [actors.group(a) for a in ("rules", "rules:v2", "llm:m", "human:alice", "alice", "")] == [
        "rules",
        "rules",
        "llm",
        "human:alice",
        "human:alice",
        "rules",
    ]
    assert [actors.rater(a) for a in ("rules", "llm", "llm:m", "alice", "human:bob", "copilot:llm")] == [
        "copilot:rules",
        "copilot:llm",
        "copilot:llm",
        "human:alice",
        "human:bob",
        "copilot:llm",
    ]


def test_events_js_is_generated_from_python():
    committed = (config.web_dir() / "events.js").read_text()
    assert committed == render(), "web/events.js is stale: python -m copilot.server.events_js > web/events.js"


# --- the same cases in the browser ------------------------------------------------------------------

_JS_RUN = """async ({cases, actors}) => {
  const { TagBook, TurnBook, isHuman, canonicalActor, actorName, isStanding } = await import("/common.js");
  const results = cases.map((c) => {
    const tags = new TagBook();
    const turns = new TurnBook();
    c.events.forEach((e, i) => {
      const ev = { v: 1, session_id: "ses_foldcases", seq: i + 1, ts: 0, type: e.type, data: e.data };
      tags.apply(ev);
      turns.apply(ev);
    });
    const out = {};
    for (const t of tags.tags.values()) {
      out[t.id] = { ...t, turn_id: t.turn_id ?? null, standing: isStanding(t) };
    }
    return { name: c.name, tags: out, turns: turns.ordered() };
  });
  const actorRows = actors.map((a) => ({
    actor: a.actor, human: isHuman(a.actor), canonical: canonicalActor(a.actor), name: actorName(a.actor) }));
  return { results, actorRows };
}"""


@pytest.fixture(scope="module")
def web_server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(config.web_dir()))

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # a closed browser socket is not a failure
            pass

    httpd = Quiet(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
def test_js_fold_in_chromium(web_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # A blank page at the file server's origin, so the real modules load as the pages load them.
            page.route(
                f"{web_server}/__fold_cases.html",
                lambda route: route.fulfill(
                    status=200, content_type="text/html", body="<!doctype html><title>fold cases</title>"
                ),
            )
            page.goto(f"{web_server}/__fold_cases.html")
            out = page.evaluate(_JS_RUN, {"cases": CASES, "actors": DOC["actors"]})
        finally:
            browser.close()
    assert errors == []
    assert len(out["results"]) == len(CASES)
    failures = {}
    for case, got in zip(CASES, out["results"]):
        bad = _mismatches(case, got["tags"], got["turns"])
        if bad:
            failures[case["name"]] = bad
    assert failures == {}
    assert out["actorRows"] == DOC["actors"]
