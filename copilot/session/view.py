"""Fold an event log into the current state of a session: segments, tags with their status, notes.

The log is the truth; this is the one place that says how updates apply, so the REST view, the
exports and calibration agree.
"""

from __future__ import annotations

from typing import Any, Iterable

from copilot.events import Event


def fold_events(events: Iterable[Event]) -> dict[str, Any]:
    """Return `{segments, tags, notes, speakers, ended}` from the log, in log order.

    A tag carries its payload plus `status` (proposed / confirmed / rejected / edited), `by` (who
    set that status; the source for a fresh proposal), `updated_seq`, and `history` (the updates,
    oldest first). A human's own tag (`tag.added`) starts as `confirmed` by that human.

    A human's verdict outranks a machine's: once a person has confirmed, rejected or edited a tag,
    a later machine update (the LLM answering late) may refine confidence and rationale but does
    not change its status, its tag id or its evidence.
    """
    segments: list[dict[str, Any]] = []
    tags: dict[str, dict[str, Any]] = {}
    notes: list[dict[str, Any]] = []
    speakers: list[str] = []
    ended: dict[str, Any] | None = None
    for ev in events:
        data = ev.data
        if ev.type == "session.started":
            speakers = list(data.get("speakers", []))
        elif ev.type == "segment.final":
            segments.append(dict(data))
        elif ev.type in ("tag.proposed", "tag.added"):
            tag = dict(data)
            human = ev.type == "tag.added"
            tag["status"] = "confirmed" if human else "proposed"
            tag["by"] = tag.get("source", "").removeprefix("human:") if human else tag.get("source", "")
            tag["seq"] = ev.seq
            tag["updated_seq"] = ev.seq
            tag["history"] = []
            tags[tag["id"]] = tag
        elif ev.type == "tag.updated":
            known = tags.get(data.get("tag_id", ""))
            if known is None:
                continue  # an update of an unknown tag changes nothing
            tag = known
            by = data.get("by", "")
            if tag.get("human_verdict") and is_machine(by):
                fields: tuple[str, ...] = ("rationale", "confidence")
            else:
                tag["status"] = data["status"]
                tag["by"] = by
                if not is_machine(by):
                    tag["human_verdict"] = True
                fields = ("tag", "evidence", "rationale", "confidence")
            for field in fields:
                if data.get(field) is not None:
                    tag[field] = data[field]
            tag["updated_seq"] = ev.seq
            tag["history"].append({"seq": ev.seq, "ts": ev.ts, **data})
        elif ev.type == "note.added":
            notes.append(dict(data))
        elif ev.type == "session.ended":
            ended = dict(data)
    return {
        "speakers": speakers,
        "segments": segments,
        "tags": list(tags.values()),
        "notes": notes,
        "ended": ended,
    }


def is_machine(by: str) -> bool:
    """A tagger (`rules`, `llm:<model>`, `copilot:*`) as opposed to a person: the one rule for
    who counts as human, shared by the live view, review and calibration."""
    return by == "rules" or by.startswith(("llm", "rules:", "copilot:"))
