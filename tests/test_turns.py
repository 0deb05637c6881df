"""The turn layer: when fragments settle into a turn (a policy with no model), how a turn is
decoded (real audio, tiny.en), and how tags follow fragments onto their turn (real SQLite)."""

from __future__ import annotations

import asyncio

import pytest

from copilot.asr.commit import TimedWord, truncate_repetition
from copilot.asr.turns import TurnConfig, TurnPolicy, compression_ratio, transcribe_turns
from copilot.audio.file_source import FileSource
from copilot.bench.asr import normalize_text, wer
from copilot.events import Segment, SessionStarted, Turn
from copilot.session.bus import Bus
from copilot.session.log import SessionLog
from copilot.session.pipeline import Pipeline
from copilot.session.store import SessionStore
from copilot.tagging.evidence import anchor_evidence
from tests.conftest import requires_shared, shared_audio


def frag(channel: int, start: int, end: int, text: str = "words here") -> Segment:
    return Segment(speaker=f"s{channel}", channel=channel, start_ms=start, end_ms=end, text=text)


# ---------------------------------------------------------------- the policy, no model


def test_a_pause_shorter_than_the_settle_pause_keeps_the_turn_open():
    policy = TurnPolicy(TurnConfig(settle_pause_ms=1000))
    policy.on_fragment(frag(0, 0, 2000))
    policy.on_speech(0, False, 2600)
    assert policy.poll({0: 2900}) == []
    policy.on_speech(0, True, 2950)  # the speaker goes on
    assert policy.poll({0: 3100}) == []
    policy.on_fragment(frag(0, 2950, 4000))
    policy.on_speech(0, False, 4500)
    [turn] = policy.poll({0: 5000})
    assert [s.start_ms for s in turn.fragments] == [0, 2950]
    assert (turn.start_ms, turn.end_ms) == (0, 4000)


def test_the_other_speaker_taking_over_settles_the_turn_at_once():
    policy = TurnPolicy(TurnConfig(settle_pause_ms=5000))
    policy.on_fragment(frag(0, 0, 2000))
    policy.on_speech(0, False, 2500)
    policy.on_speech(1, False, 2500)
    assert policy.poll({0: 2500, 1: 2500}) == []
    policy.on_speech(1, True, 2700)
    [turn] = policy.poll({0: 2700, 1: 2700})
    assert turn.channel == 0


def test_a_turn_never_settles_while_its_speaker_is_speaking():
    policy = TurnPolicy(TurnConfig(settle_pause_ms=500))
    policy.on_fragment(frag(0, 0, 2000))
    policy.on_speech(0, True, 2100)
    policy.on_speech(1, True, 2300)
    assert policy.poll({0: 9000, 1: 9000}) == []


def test_a_turn_is_capped_below_whispers_window():
    policy = TurnPolicy(TurnConfig(max_turn_ms=25_000))
    assert policy.on_fragment(frag(0, 0, 12_000)) == []
    assert policy.on_fragment(frag(0, 12_100, 24_000)) == []
    [settled] = policy.on_fragment(frag(0, 24_100, 30_000))
    assert settled.end_ms == 24_000
    assert [t.start_ms for t in policy.flush()] == [24_100]


def test_flush_settles_every_open_turn_in_time_order():
    policy = TurnPolicy()
    policy.on_fragment(frag(1, 500, 900))
    policy.on_fragment(frag(0, 100, 400))
    assert [t.channel for t in policy.flush()] == [0, 1]
    assert policy.flush() == []


def test_loops_and_compression():
    words = [TimedWord(" with menus", i * 100, i * 100 + 90) for i in range(5)]
    assert len(truncate_repetition(words)) == 1
    assert compression_ratio("with menus " * 20) > 2.4
    assert compression_ratio("Should password resets arrive within seconds?") < 2.4


def test_a_turn_of_decoded_words_or_of_none():
    from copilot.asr.turns import turn_from_words

    place = dict(speaker="candidate", channel=1, start_ms=100, end_ms=900, segment_ids=["seg_a"])
    empty = turn_from_words([], model="tiny.en", **place)
    assert (empty.start_ms, empty.end_ms, empty.text, empty.words, empty.revision) == (100, 900, "", [], 0)
    assert empty.id.startswith("turn_") and empty.segment_ids == ["seg_a"] and empty.model == "tiny.en"
    words = [TimedWord(" Hello,", 120, 400, 0.91234), TimedWord(" world.", 420, 880, 0.5)]
    rev = turn_from_words(words, model="base", turn_id=empty.id, revision=1, **place)
    assert (rev.id, rev.start_ms, rev.end_ms, rev.text, rev.revision) == (empty.id, 120, 880, "Hello, world.", 1)
    assert [(w.text, w.start_ms, w.probability) for w in rev.words] == [("Hello,", 120, 0.912), ("world.", 420, 0.5)]
    as_segment = rev.as_segment()
    assert (as_segment.id, as_segment.channel, as_segment.text, as_segment.words) == (rev.id, 1, rev.text, rev.words)


def test_evidence_is_widened_to_the_turns_sentence():
    text = "Sounds good. Before I start, who sends these notifications, and how many go out per day?"
    assert anchor_evidence(text, "who sends these notifications and") == (
        "Before I start, who sends these notifications, and how many go out per day?"
    )
    assert anchor_evidence(text, "zebra") == text


# ---------------------------------------------------------------- real audio, tiny.en


@pytest.fixture(scope="module")
def model():
    from copilot.asr.engine import load_model

    return load_model("tiny.en", "cpu")


DIALOGUE = [
    ("interviewer", "Walk me through how you would store the uploaded photos."),
    ("candidate", "Before I pick a store, how large is a typical photo, and how long must we keep them?"),
    ("interviewer", "A few megabytes each, kept for seven years."),
    (
        "candidate",
        "Then object storage is the simpler choice. It costs less than a database, "
        "but listing recent uploads is slower, so I would keep a small index table.",
    ),
]


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory):
    from tests.synth import espeak_dialogue

    path = tmp_path_factory.mktemp("turns") / "dialogue.wav"
    return path, espeak_dialogue(DIALOGUE, path, stereo=True, gap_s=0.9, wpm=150)


def test_each_spoken_turn_settles_once_with_all_its_fragments(model, dialogue):
    path, ref = dialogue
    out = list(transcribe_turns(FileSource(path, mono=False), model, model_name="tiny.en"))
    fragments = [o for o in out if isinstance(o, Segment)]
    turns = [o for o in out if isinstance(o, Turn)]
    assert [(t.speaker, t.channel) for t in sorted(turns, key=lambda t: t.start_ms)] == [
        (r["speaker"], r["channel"]) for r in ref
    ]
    # Every fragment is settled by exactly one turn of its own channel, and arrived before it.
    settled = [sid for t in turns for sid in t.segment_ids]
    assert sorted(settled) == sorted(f.id for f in fragments)
    for t in turns:
        mine = [f for f in fragments if f.id in t.segment_ids]
        assert all(f.channel == t.channel for f in mine)
        assert out.index(t) > max(out.index(f) for f in mine)
        assert t.model == "tiny.en" and t.words and t.text
    # The turn layer reads at least as well as the fragments it settles.
    refs = [" ".join(r["text"] for r in ref if r["channel"] == ch) for ch in (0, 1)]
    by_channel = lambda items, ch: " ".join(i.text for i in items if i.channel == ch)  # noqa: E731
    turn_wer = sum(wer(refs[ch], by_channel(turns, ch)) * len(normalize_text(refs[ch]).split()) for ch in (0, 1))
    frag_wer = sum(wer(refs[ch], by_channel(fragments, ch)) * len(normalize_text(refs[ch]).split()) for ch in (0, 1))
    total = sum(len(normalize_text(r).split()) for r in refs)
    assert turn_wer / total <= 0.15, [t.text for t in turns]
    assert turn_wer <= frag_wer


@requires_shared
def test_real_meeting_speech_has_no_loops(model):
    path = shared_audio("ami/ES2011a.Headset-0-40s-46s.wav")
    turns = [o for o in transcribe_turns(FileSource(path), model) if isinstance(o, Turn)]
    assert turns
    words = [normalize_text(w.text) for t in turns for w in t.words]
    for n in (1, 2, 3):
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        assert not any(grams[i] == grams[i + n] == grams[i + 2 * n] for i in range(len(grams) - 2 * n)), words
    text = " ".join(t.text for t in turns)
    assert wer("I'm Abigail Claflin. You can call me Abbie.", text) <= 0.5, text


@requires_shared
def test_jfk_as_turns_is_near_perfect(model):
    turns = [o for o in transcribe_turns(FileSource(shared_audio("jfk.flac")), model) if isinstance(o, Turn)]
    text = " ".join(t.text for t in turns)
    assert (
        wer(
            "And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.",
            text,
        )
        <= 0.05
    ), text


# ---------------------------------------------------------------- tags follow fragments onto the turn


class ScriptedTranscriber:
    """Stands in for the ASR: plays back fragments and turns at the first chunk."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def feed(self, chunk):
        out, self.outputs = self.outputs, []
        return out

    def flush(self):
        return []


class OneChunkSource:
    speakers = ["interviewer", "candidate"]

    def chunks(self):
        import numpy as np

        from copilot.audio.base import AudioChunk

        yield AudioChunk(np.zeros(320, dtype=np.float32), 0, "interviewer", 0)

    def close(self):
        pass


def test_one_machine_chip_per_turn_and_tag_carried_onto_the_settled_turn(tmp_path):
    from copilot.tagging.rubric import load_rubric
    from copilot.tagging.rules import RulesTagger

    f1 = Segment(
        speaker="candidate", channel=1, start_ms=0, end_ms=2000, text="Option one is simpler to run, but it costs more."
    )
    f2 = Segment(
        speaker="candidate", channel=1, start_ms=2100, end_ms=4000, text="Option two is cheaper, but slower to"
    )
    turn = Turn(
        speaker="candidate",
        channel=1,
        start_ms=0,
        end_ms=4200,
        segment_ids=[f1.id, f2.id],
        text="Option one is simpler to run, but it costs more. Option two is cheaper, but slower to build.",
    )
    store = SessionStore(tmp_path / "data")
    sid = store.create_session(SessionStarted(title="t", mode="replay"))
    log = SessionLog(store, Bus())
    pipe = Pipeline(
        session_id=sid,
        log=log,
        source=OneChunkSource(),
        transcriber=ScriptedTranscriber([f1, f2, turn]),
        tagger=RulesTagger(load_rubric("default")),
        turns=True,
    )
    asyncio.run(pipe.run())
    events = store.events(sid)
    proposed = [e for e in events if e.type == "tag.proposed"]
    tradeoffs = [e for e in proposed if e.data["tag"] == "tradeoff_articulation"]
    assert len(tradeoffs) == 1, [e.data for e in proposed]  # the second fragment grew the same chip
    chip = tradeoffs[0].data["id"]
    moves = [
        e.data
        for e in events
        if e.type == "tag.updated" and e.data["tag_id"] == chip and e.data.get("turn_id") == turn.id
    ]
    assert moves, "the chip was not carried to the settled turn"
    last = moves[-1]
    assert last["segment_ids"] == [f1.id, f2.id]
    assert last["evidence"] and last["evidence"] in turn.text
    assert [e.type for e in events].index("turn.final") < [e.type for e in events].index(
        "tag.updated", [e.type for e in events].index("turn.final")
    )


def test_bench_turns_counts_duplicates_and_scores_pairs_per_spoken_turn():
    from copilot.bench.turns import score_events
    from copilot.events import Event, Tag, TagUpdate

    script = [
        {"channel": 1, "start_ms": 0, "end_ms": 5000, "tags": ["tradeoff_articulation"]},
        {"channel": 1, "start_ms": 6000, "end_ms": 9000, "tags": []},
    ]
    s1, s2 = frag(1, 0, 2000), frag(1, 2100, 4800)
    t1 = Tag(tag="tradeoff_articulation", segment_ids=[s1.id], start_ms=0, end_ms=2000)
    t2 = Tag(tag="tradeoff_articulation", segment_ids=[s2.id], start_ms=2100, end_ms=4800)
    t3 = Tag(tag="steering_decision", segment_ids=[s2.id], start_ms=6100, end_ms=8000)
    events = [Event.of("ses_x", s) for s in (s1, s2)] + [
        Event.of("ses_x", t, type="tag.proposed") for t in (t1, t2, t3)
    ]
    score = score_events(events, script, mode="fragments")
    assert (score.chips, score.duplicates, score.pairs, score.correct) == (3, 1, 2, 1)
    events.append(Event.of("ses_x", TagUpdate(tag_id=t3.id, status="retracted", by="rules")))
    events.append(Event.of("ses_x", TagUpdate(tag_id=t2.id, status="rejected", by="human:ann")))
    score = score_events(events, script, mode="fragments")
    assert (score.chips, score.duplicates, score.precision, score.recall) == (1, 0, 1.0, 1.0)
