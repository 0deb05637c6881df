"""The composition root (`copilot.runtime`): one config in, the wired parts out. Real SQLite, the
real app over HTTP, the real tagger factory; the LLM is the fake OpenAI-compatible server."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import pytest

from copilot.asr.options import DEFAULT_MODEL, AsrOptions, add_asr_arguments, options_from_args
from copilot.audio.demo import DEMO_AUDIO
from copilot.audio.file_source import FileSource
from copilot.errors import CopilotError
from copilot.events import Event, Segment
from copilot.runtime import Runtime, RuntimeConfig
from copilot.server.runner import ServerThread
from copilot.tagging.hybrid import LLMRefiner
from copilot.tagging.llm import LLMTagger
from copilot.tagging.rules import RulesTagger
from tests.fake_llm_server import FakeLLMServer

REPO = Path(__file__).resolve().parent.parent


class _NoAsr:
    """The pipeline is only built here, never run: nothing is transcribed."""

    def feed(self, chunk):
        raise AssertionError("not run")

    def flush(self):
        raise AssertionError("not run")


def test_one_store_bus_and_log_behind_the_app(tmp_path):
    with Runtime(RuntimeConfig(data_dir=tmp_path / "data", token="tok-1")) as rt:
        assert rt.store.path == tmp_path / "data" / "sessions.db"
        assert rt.log.store is rt.store and rt.log.bus is rt.bus
        sid, offset = rt.open_session(mode="replay", title="root", speakers=["interviewer", "candidate"], source="test")
        assert offset == 0
        rt.log.record(Event.of(sid, Segment(speaker="candidate", start_ms=0, end_ms=900, text="hello root")))
        with ServerThread(rt.app()) as srv:
            view = httpx.get(f"{srv.base_url}/api/sessions/{sid}?token=tok-1").json()
            assert [s["text"] for s in view["segments"]] == ["hello root"]
            assert httpx.get(f"{srv.base_url}/api/sessions/{sid}?token=wrong").status_code == 401
        started = rt.store.events(sid)[0].data
        assert started["rubric"] == "default" and started["config"] == {
            "model": DEFAULT_MODEL,
            "asr_device": "auto",
            "llm": None,
            "keep_audio": False,
        }


def test_continue_carries_on_after_the_last_segment(tmp_path):
    with Runtime(RuntimeConfig(data_dir=tmp_path)) as rt:
        sid, _ = rt.open_session(mode="live", title="t", speakers=["a"], source="mic")
        rt.log.record(Event.of(sid, Segment(speaker="a", start_ms=0, end_ms=4200, text="x")))
        again, offset = rt.open_session(mode="live", title="t", speakers=["a"], source="mic", continue_id=sid)
        assert again == sid and offset == 5200
        assert rt.store.events(sid)[-1].data["message"] == "session continued after an interruption"


def test_a_rubric_path_is_stored_as_given_and_a_bad_rubric_fails_before_any_session(tmp_path):
    path = REPO / "rubric_tags" / "builder_track.yaml"
    with Runtime(RuntimeConfig(data_dir=tmp_path, rubric=str(path))) as rt:
        assert rt.tagging().rubric_ref == str(path)
        assert isinstance(rt.tagging().tagger, RulesTagger) and rt.tagging().refiner_factory() is None
    with Runtime(RuntimeConfig(data_dir=tmp_path, rubric="no-such-rubric")) as rt:
        with pytest.raises(CopilotError):
            rt.tagging()
        assert rt.store.list_sessions() == []
    with Runtime(RuntimeConfig(data_dir=tmp_path / "other", llm="   ")) as rt:
        with pytest.raises(CopilotError, match="needs an LLM model"):
            rt.tagging()
        assert rt.store.list_sessions() == []


def test_the_refiner_is_built_with_the_pipeline(tmp_path):
    with (
        FakeLLMServer() as server,
        Runtime(
            RuntimeConfig(
                data_dir=tmp_path, llm="openai/fake-model", api_base=server.api_base, llm_options={"timeout_s": 3}
            )
        ) as rt,
    ):
        tagging = rt.tagging()
        assert isinstance(tagging.llm, LLMTagger) and tagging.llm.timeout_s == 3
        source = FileSource(DEMO_AUDIO, realtime=True, speakers=["interviewer", "candidate"])
        try:
            sid, _ = rt.open_session(mode="replay", title="r", speakers=source.speakers, source="demo")
            pipe = rt.pipeline(sid, source, _NoAsr())
            # given to the tag stage at construction, bound to that stage's emit
            assert isinstance(pipe.refiner, LLMRefiner) and pipe.tags.refiner is pipe.refiner
            assert pipe.refiner.emit == pipe.tags.emit
            assert pipe.tags.tagger is tagging.tagger
            untagged = rt.pipeline(sid, source, _NoAsr(), tag=False)
            assert untagged.refiner is None and untagged.tags.tagger is None
        finally:
            source.close()
        assert rt.store.events(sid)[0].data["config"]["llm"] == "openai/fake-model"


def test_a_host_other_than_loopback_is_accepted_by_the_app(tmp_path):
    with Runtime(RuntimeConfig(data_dir=tmp_path, host="copilot.lan")) as rt:
        assert rt.app().state.extra_hosts == frozenset({"copilot.lan"})
    with Runtime(RuntimeConfig(data_dir=tmp_path, host="localhost")) as rt:
        assert rt.app().state.extra_hosts == frozenset()


def test_asr_options_one_definition_for_every_command():
    p = argparse.ArgumentParser()
    add_asr_arguments(p, device_flag="--asr-device")
    args = p.parse_args(["--asr-device", "cpu", "--compute-type", "int8"])
    assert options_from_args(args, device_flag="--asr-device") == AsrOptions(DEFAULT_MODEL, "cpu", "int8")
    with pytest.raises(SystemExit):
        p.parse_args(["--asr-device", "tpu"])
