"""A realistic reviewed session, appended through the real store API (review and calibration tests).

A short system-design interview: final segments with word-level times, rules proposals, one LLM
refinement, the live interviewer's verdicts and hotkey tag, and notes. Plus two raters' tag files
(alice, bob) whose agreement is worked out by hand in tests/test_review_browser.py.
"""

from __future__ import annotations

from copilot.events import Event, Note, Segment, SessionEnded, SessionStarted, Tag, TagUpdate, Word

RG, TA, SD = "requirement_gathering", "tradeoff_articulation", "steering_decision"

LINES = [
    ("interviewer", "Let's design a URL shortener. Where would you like to start?"),
    ("candidate", "Before I start, who are the users, and roughly how many links do we create per day?"),
    ("interviewer", "Assume a hundred million new links a day, mostly read traffic."),
    ("candidate", "So reads dominate. Do links ever expire, and do we need custom aliases?"),
    ("interviewer", "Custom aliases yes, expiry is optional."),
    (
        "candidate",
        "We could use a relational database, which gives us strong consistency, but it costs us write throughput at this scale.",
    ),
    ("candidate", "A key value store scales writes easily, but we lose transactions for alias uniqueness."),
    ("interviewer", "Which one would you pick?"),
    ("candidate", "I'll go with the key value store and handle alias uniqueness with a conditional put."),
    ("candidate", "Let's leave analytics out of scope for now and focus on the redirect path."),
    ("interviewer", "What about caching the hot links?"),
    (
        "candidate",
        "A cache in front of the store is cheap, although it adds an invalidation problem when a link is deleted.",
    ),
]
SEG_MS = 5000  # each line gets a 5 s slot, speech for 4.5 s of it


def segment(i: int) -> Segment:
    speaker, text = LINES[i]
    start = i * SEG_MS
    end = start + SEG_MS - 500
    words = text.split()
    step = (end - start) // len(words)
    return Segment(
        id=f"seg_{i + 1:02d}",
        speaker=speaker,
        channel=0 if speaker == "interviewer" else 1,
        start_ms=start,
        end_ms=end,
        text=text,
        words=[
            Word(text=w, start_ms=start + k * step, end_ms=start + (k + 1) * step, probability=0.9)
            for k, w in enumerate(words)
        ],
    )


def build_session(store, title: str = "URL shortener, system design") -> str:
    sid = store.create_session(
        SessionStarted(title=title, mode="replay", rubric="default", source="tests/review_fixtures.py")
    )
    segs = [segment(i) for i in range(len(LINES))]

    def add(payload, type=None):
        return store.append(Event.of(sid, payload, type=type))

    def rules(i: int, tag: str, evidence: str, conf: float, tid: str) -> None:
        s = segs[i]
        add(
            Tag(
                id=tid,
                tag=tag,
                segment_ids=[s.id],
                start_ms=s.start_ms,
                end_ms=s.end_ms,
                speaker=s.speaker,
                evidence=evidence,
                rationale="rule match",
                confidence=conf,
                source="rules",
            )
        )

    # The rules tagger's tags, each right after its segment (tag id tag_rNN for segment index NN).
    rule_tags = {
        1: (RG, "who are the users", 0.82),
        3: (RG, "Do links ever expire", 0.77),
        5: (TA, "gives us strong consistency, but it costs us write throughput", 0.91),
        6: (TA, "scales writes easily, but we lose transactions", 0.88),
        8: (SD, "I'll go with the key value store", 0.93),
        9: (TA, "leave analytics out of scope", 0.55),
        11: (TA, "cheap, although it adds an invalidation problem", 0.7),
    }
    for i, s in enumerate(segs):
        add(s)
        if i in rule_tags:
            rules(i, *rule_tags[i], f"tag_r{i:02d}")
    # The LLM's verdict on every rules tag (as copilot.tagging.hybrid emits them): it confirms most,
    # corrects the scope-out (a steering decision, not a tradeoff) and disputes the cache remark.
    llm = "llm:gpt-4o-mini"
    for tid, conf in [("tag_r01", 0.9), ("tag_r03", 0.8), ("tag_r05", 0.95), ("tag_r06", 0.9), ("tag_r08", 0.9)]:
        add(TagUpdate(tag_id=tid, status="confirmed", by=llm, confidence=conf))
    add(
        TagUpdate(
            tag_id="tag_r09",
            status="edited",
            by=llm,
            tag=SD,
            rationale="scoping something out is a steering decision",
            confidence=0.86,
        )
    )
    add(
        TagUpdate(
            tag_id="tag_r11",
            status="proposed",
            by=llm,
            confidence=0.2,
            rationale="names a cost but weighs no alternative",
        )
    )
    # The live interviewer's verdicts, a hotkey tag and notes.
    add(TagUpdate(tag_id="tag_r01", status="confirmed", by="interviewer"))
    add(TagUpdate(tag_id="tag_r05", status="confirmed", by="interviewer"))
    add(TagUpdate(tag_id="tag_r11", status="rejected", by="interviewer"))
    s = segs[6]
    add(
        Tag(
            id="tag_h01",
            tag=SD,
            segment_ids=[],
            start_ms=s.start_ms + 2000,
            end_ms=s.start_ms + 2000,
            speaker="",
            evidence="",
            source="human:interviewer",
        )
    )
    add(
        Note(
            text="Strong clarifying questions up front; quantified the read/write ratio.", at_ms=16000, by="interviewer"
        )
    )
    add(Note(text="Did not come back to expiry.", at_ms=47000, by="interviewer"))
    add(SessionEnded(reason="replay finished", duration_ms=len(LINES) * SEG_MS))
    return sid


def rater_file(sid: str, rater: str, marks: dict[str, list[int]], coverage: dict | None = None) -> dict:
    """A tag file a rater wrote elsewhere: `marks` = tag id -> 1-based line numbers."""
    tags = []
    for tag, lines in marks.items():
        for n in lines:
            s = segment(n - 1)
            tags.append(
                {
                    "id": f"tag_{rater}_{tag[:3]}_{n:02d}",
                    "tag": tag,
                    "start_ms": s.start_ms + 200,
                    "end_ms": s.end_ms - 200,
                    "segment_ids": [s.id],
                    "speaker": s.speaker,
                    "evidence": " ".join(s.text.split()[:7]),
                    "note": "",
                }
            )
    return {
        "format": "interview-copilot.tags",
        "version": 1,
        "session_id": sid,
        "rater": rater,
        "rubric": "default",
        "exported_at": "2026-11-25T21:00:00+00:00",
        "coverage": coverage,
        "tags": tags,
    }


# Two raters on the 12 lines, requirement gathering only differs in one place.
ALICE = {RG: [2, 4], TA: [6, 7, 12], SD: [9, 10]}
BOB = {RG: [2, 4, 6], TA: [6, 7], SD: [9]}
