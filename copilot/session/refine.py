"""Post-call refinement: decode a finished session's turns again with a bigger model.

Live, turns are decoded with the small model the CPU budget allows (tiny.en). After the call,
with the audio kept (`--keep-audio`), each turn's audio is decoded again, as the live layer does
(`TurnDecoder`: beam search, the previous turn's text as the prompt, temperature fallback), by a
bigger model, and appended as a new revision of the same turn: a `turn.final` with the same `id`
and `segment_ids`, `revision` one higher and `model` naming the model. Nothing is rewritten.

The refined turns are tagged again with the session's rubric (rules tagger):
- a machine tag on the turn that the refined text still raises is updated in place (same tag id,
  `proposed` by its source, evidence quoted verbatim from the refined text);
- a tag the refined text raises that the turn did not carry is proposed anew, on the turn;
- a machine tag the refined text no longer raises stays as it was: only the LLM or a person
  rejects a tag, never a second ASR pass;
- human tags, and tags a person has judged, are left alone.

Everything is decoded and tagged before anything is written; the events are then appended in
one store transaction, so an interrupted or failed run leaves the log as it was.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from copilot import actors
from copilot.asr.echo import EchoSuppressor
from copilot.errors import SessionError
from copilot.events import Event, Segment, Status, Tag, Turn
from copilot.session.fold import SessionView, TagState, fold
from copilot.session.tag_move import move_to_turn, place_on_turn

if TYPE_CHECKING:
    from copilot.asr.turns import TurnConfig
    from copilot.session.store import SessionStore

DEFAULT_REFINE_MODEL = "base"
# Silence after the turn in the encoder input. Live, 1 s keeps tiny.en fast; base, given 1 s or
# 2 s, looped at every temperature on JFK and on short espeak turns, and 3 s cured it at about
# the same cost (docs/turns.md).
REFINE_PAD_S = 3.0


@dataclass
class RefineSummary:
    session_id: str
    model: str
    turns: int = 0  # turns in the session
    refined: int = 0  # turns given a new revision
    kept: int = 0  # turns whose every decode failed the quality checks: no revision appended
    changed: int = 0  # refined turns whose words differ from the previous revision
    words_changed: int = 0  # word edits (substitutions + insertions + deletions) from the previous text
    words_before: int = 0
    tags_updated: int = 0
    tags_added: int = 0
    tags_not_raised: int = 0  # machine tags the refined text no longer raises (left standing)
    decode_s: float = 0.0
    total_s: float = 0.0
    audio_s: float = 0.0  # audio decoded: the turns' spans with their margins
    events: list[Event] = field(default_factory=list)  # what was appended, with seqs

    def line(self) -> str:
        tags = f"tags: {self.tags_updated} updated, {self.tags_added} added"
        if self.tags_not_raised:
            tags += f", {self.tags_not_raised} no longer raised (left standing)"
        kept = f", {self.kept} kept as they were (every decode failed its checks)" if self.kept else ""
        return (
            f"refined {self.refined} of {self.turns} turns of {self.session_id} with {self.model}{kept}: "
            f"{self.words_changed} of {self.words_before} words changed in {self.changed} turns; {tags}; "
            f"{self.total_s:.1f} s ({self.decode_s:.1f} s decoding {self.audio_s:.1f} s of turn audio)"
        )


# ------------------------------------------------------------------ reading the log


def latest_turns(events: Iterable[Event]) -> list[Turn]:
    """Each turn's latest revision, in conversation order (as the fold sorts them)."""
    return [t.turn for t in fold(events).turns]


@dataclass(frozen=True)
class RetagState:
    """A tag as the log leaves it (folded by `copilot.session.fold`), as far as refinement needs."""

    id: str
    tag: str  # the name re-raised rules tags are matched by (`_match_name`)
    source: str
    machine: bool  # proposed by a tagger (`tag.proposed`), not added by a person
    status: str
    judged: bool  # a person added, confirmed, rejected or edited it
    turn_id: str | None
    segment_ids: list[str]

    @classmethod
    def of(cls, state: TagState) -> "RetagState":
        return cls(
            id=state.id,
            tag=_match_name(state),
            source=state.source,
            machine=state.kind == "tag.proposed",
            status=state.status,
            judged=state.human_verdict_given,
            turn_id=state.tag.turn_id,
            segment_ids=list(state.tag.segment_ids),
        )


def _match_name(state: TagState) -> str:
    """The name it was proposed under, or the one a person last gave it. An LLM's rename in place
    is its verdict on the rules' chip: the rules re-raise it under their own name, and matching
    it there keeps one chip for the moment instead of proposing the rules' name beside it."""
    for upd in reversed(state.history):
        if upd.tag and actors.is_human(upd.by):
            return upd.tag
    return state.original_tag


def tag_states(events: Iterable[Event]) -> list[RetagState]:
    """Tags with their status and where they point now."""
    return [RetagState.of(t) for t in fold(events).tags]


def _tags_on(turn: Turn, tags: Sequence[RetagState]) -> list[RetagState]:
    """Tags on this turn: pointing at it, or (never carried to a turn) at one of its fragments."""
    frags = set(turn.segment_ids)
    return [t for t in tags if t.turn_id == turn.id or (t.turn_id is None and frags.intersection(t.segment_ids))]


# ------------------------------------------------------------------ words changed

_PUNCT = re.compile(r"[^\w' ]+")


def _norm_words(text: str) -> list[str]:
    return _PUNCT.sub(" ", text.lower().replace("-", " ")).split()


def word_edits(before: str, after: str) -> int:
    """Word-level edit distance, case and punctuation aside."""
    a, b = _norm_words(before), _norm_words(after)
    prev = list(range(len(b) + 1))
    for i, wa in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, wb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (wa != wb))
        prev = cur
    return prev[-1]


# ------------------------------------------------------------------ the run


def check_refinable(store: "SessionStore", session_id: str) -> tuple[dict[str, Any], list[Event], SessionView, Path]:
    """The session's info, log, folded log (with turns) and kept audio, or a one-line SessionError."""
    info = store.session_info(session_id)  # "no session X"
    if info["status"] == "live":
        raise SessionError(
            f"session {session_id} is still live; refine it after it ends "
            f"(or close it with `copilot sessions end {session_id}`)"
        )
    events = store.events(session_id)
    view = fold(events, session_id)
    if not view.turns:
        raise SessionError(
            f"session {session_id} has no turns, only fragments (recorded with --no-turns or by "
            "a version before turns); there is nothing to refine"
        )
    audio = store.audio_path(session_id)
    if not audio.is_file():
        raise SessionError(f"session {session_id} has no kept audio; record with --keep-audio to refine it later")
    return info, events, view, audio


def refine_session(
    store: "SessionStore",
    session_id: str,
    *,
    model: str = DEFAULT_REFINE_MODEL,
    device: str = "auto",
    compute_type: str | None = None,
    config: "TurnConfig | None" = None,
    pad_s: float | None = REFINE_PAD_S,
    progress: Callable[[str], None] | None = None,
) -> RefineSummary:
    """Decode the session's turns again with `model`, re-tag them, append it all in one transaction."""
    from copilot.asr.engine import load_model
    from copilot.asr.turns import TurnConfig, TurnDecoder, turn_from_words
    from copilot.audio.base import SAMPLE_RATE
    from copilot.audio.decode import decode_audio
    from copilot.tagging.rubric import load_rubric
    from copilot.tagging.rules import RulesTagger

    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    info, events, view, audio_path = check_refinable(store, session_id)
    turns = [t.turn for t in view.turns]
    config = config or TurnConfig()
    whisper = load_model(model, device, compute_type)  # an unknown or missing model fails here
    model_name = Path(model).name
    tagger = RulesTagger(load_rubric(info["rubric"]))  # the session's rubric, as live
    audio = decode_audio(audio_path, mono=False)  # one row per speaker, as kept
    bad = sorted({t.channel for t in turns if t.channel >= audio.channels})
    if bad:
        raise SessionError(
            f"{audio_path}: kept audio has {audio.channels} channel(s), but turns are on channel {bad[0]}"
        )
    samples = audio.samples
    if samples.shape[0] == 2:
        # The kept audio is as captured; live, the echo gate kept the other speaker's leak out of
        # each channel before the recognizer, so the refined turns are decoded through it too.
        samples = EchoSuppressor().process(samples)
    fragments = view.segment_index()
    summary = RefineSummary(session_id, model_name, turns=len(turns))

    # 1. Decode every turn (the previous turn's refined text as the prompt, as live).
    decoder = TurnDecoder(whisper, config, pad_s=pad_s)
    say(f"decoding {len(turns)} turns with {model_name}")
    refined: list[Turn] = []  # the new revision, or the old one where every decode failed
    prompt = ""
    td = time.perf_counter()
    for turn in turns:
        frags = [fragments[s] for s in turn.segment_ids if s in fragments]
        start = min([turn.start_ms] + [f.start_ms for f in frags]) - config.margin_ms
        end = max([turn.end_ms] + [f.end_ms for f in frags]) + config.margin_ms
        start = max(0, start)
        channel_audio = samples[turn.channel, start * SAMPLE_RATE // 1000 : end * SAMPLE_RATE // 1000]
        kept_before = decoder.stats.kept_fragments
        words = decoder.decode(
            channel_audio, start, [turn.as_segment()], prompt=prompt if config.prompt and prompt else None
        )
        summary.audio_s += (end - start) / 1000
        if decoder.stats.kept_fragments > kept_before or not words:
            summary.kept += 1  # nothing better than what is there: no revision claims otherwise
            refined.append(turn)
            prompt = turn.text
            continue
        new = turn_from_words(
            words,
            speaker=turn.speaker,
            channel=turn.channel,
            start_ms=turn.start_ms,
            end_ms=turn.end_ms,
            segment_ids=list(turn.segment_ids),
            model=model_name,
            turn_id=turn.id,
            revision=turn.revision + 1,
        )
        edits = word_edits(turn.text, new.text)
        summary.refined += 1
        summary.words_changed += edits
        summary.words_before += len(_norm_words(turn.text))
        summary.changed += edits > 0
        refined.append(new)
        prompt = new.text
    summary.decode_s = time.perf_counter() - td

    # 2. Tag the refined turns again, against the tags the log holds now.
    say("tagging the refined turns")
    tags = [RetagState.of(t) for t in view.tags]
    out: list[Event] = []
    context: list[Segment] = []
    for before, turn in zip(turns, refined):
        as_segment = turn.as_segment()
        if turn is not before:
            out.append(Event.of(session_id, turn))
            out += _retag(session_id, turn, tagger.tag(as_segment, context[-8:]), _tags_on(turn, tags), summary)
        context.append(as_segment)
    if not out:
        summary.total_s = time.perf_counter() - t0
        return summary
    out.append(
        Event.of(
            session_id,
            Status(
                component="asr",
                message=f"{summary.refined} turns refined with {model_name}",
                details={
                    "model": model_name,
                    "refined": summary.refined,
                    "kept": summary.kept,
                    "words_changed": summary.words_changed,
                    "tags_updated": summary.tags_updated,
                    "tags_added": summary.tags_added,
                    "decode_s": round(summary.decode_s, 2),
                },
            ),
        )
    )

    # 3. One transaction. Refuse if the log gained turn revisions meanwhile (a second refine).
    if any(ev.type == "turn.final" for ev in store.events(session_id, after=events[-1].seq or 0)):
        raise SessionError(f"session {session_id} gained turn revisions while refining; run refine again")
    summary.events = store.append_many(out)
    summary.total_s = time.perf_counter() - t0
    return summary


def _retag(
    session_id: str, turn: Turn, raised: list[Tag], existing: list[RetagState], summary: RefineSummary
) -> list[Event]:
    """Updates of the machine tags the refined turn still raises; proposals of those it newly raises."""
    from copilot.tagging.evidence import anchor_evidence

    by_name = {t.tag: t for t in raised}
    out: list[Event] = []
    for t in existing:
        if not t.machine or t.judged or t.status == "retracted":
            continue  # a person's tag or verdict, or a proposal the machine withdrew: untouched
        new = by_name.get(t.tag)
        if new is None:
            summary.tags_not_raised += 1
            continue
        same = t.source == new.source  # the rationale and confidence are its own source's
        upd = move_to_turn(
            t.id,
            t.source,
            turn,
            evidence=anchor_evidence(turn.text, new.evidence),
            rationale=new.rationale if same else None,
            confidence=new.confidence if same else None,
        )
        out.append(Event.of(session_id, upd))
        summary.tags_updated += 1
    # A machine tag of that name already on the turn (standing, or judged by a person) means it
    # was there; a withdrawn one does not.
    present = {t.tag for t in existing if t.machine and t.status != "retracted"}
    for name, new in by_name.items():
        if name in present:
            continue
        tag = place_on_turn(new, turn, evidence=anchor_evidence(turn.text, new.evidence))
        out.append(Event.of(session_id, tag, type="tag.proposed"))
        summary.tags_added += 1
    return out
