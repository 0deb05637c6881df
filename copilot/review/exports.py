"""Session exports for the debrief: Markdown report, JSON (the whole log), WebVTT and SRT.

`export_session(events, fmt)` is the one entry point (`copilot sessions export` and the
REST export route call it). The JSON export is the log itself, versioned, and
`import_json` reads it back into the same events; `parse_vtt` / `parse_srt` read the
subtitle formats back into cues, so every format is tested by a round trip.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
from dataclasses import dataclass
from typing import Iterable

from copilot import actors
from copilot.errors import CopilotError
from copilot.events import SCHEMA_VERSION, Event, Segment, Turn
from copilot.review.rubric_info import labels as rubric_labels
from copilot.review.summary import fmt_ms, summarize, tag_unit
from copilot.session.fold import SessionView, Unit, fold

FORMATS = ("md", "json", "vtt", "srt")
EXPORT_FORMAT = "interview-copilot.session"
EXPORT_VERSION = 1


class ExportError(CopilotError):
    """An unknown export format, or an export file that cannot be read back."""


def export_session(events: Iterable[Event], fmt: str, labels: dict[str, str] | None = None) -> str:
    events = [e for e in events if e.persisted]
    if fmt == "json":
        return export_json(events)
    view = fold(events)
    if fmt == "md":
        return export_markdown(view, labels if labels is not None else rubric_labels(view.rubric))
    if fmt == "vtt":
        return export_vtt(view)
    if fmt == "srt":
        return export_srt(view)
    raise ExportError(f"unknown export format {fmt!r} (choose one of: {', '.join(FORMATS)})")


# --- JSON ------------------------------------------------------------------------------------------


def export_json(events: list[Event]) -> str:
    session_id = events[0].session_id if events else ""
    doc = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "event_schema": SCHEMA_VERSION,
        "session_id": session_id,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "events": [e.model_dump(mode="json") for e in events],
    }
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def import_json(text: str) -> list[Event]:
    """The events of a JSON export; ExportError naming the problem if it is not one."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"not a session export: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise ExportError(f"not a session export: 'format' is not {EXPORT_FORMAT!r}")
    if doc.get("version") != EXPORT_VERSION:
        raise ExportError(
            f"unsupported session export version {doc.get('version')!r} (this copilot reads {EXPORT_VERSION})"
        )
    out = []
    for i, raw in enumerate(doc.get("events") or []):
        try:
            out.append(Event.model_validate(raw))
        except Exception as exc:  # pydantic's message is long; name the event and the first problem
            first = str(exc).splitlines()[1:3]
            raise ExportError(f"session export event #{i}: {' '.join(s.strip() for s in first)}") from None
    return out


# --- subtitles -------------------------------------------------------------------------------------


@dataclass
class Cue:
    start_ms: int
    end_ms: int
    speaker: str
    text: str


def segment_cues(segments: Iterable[Segment | Turn | Unit]) -> list[Cue]:
    """One cue per segment or turn (never zero-length), text on one line."""
    return [
        Cue(s.start_ms, max(s.end_ms, s.start_ms + 1), _plain(s.speaker), " ".join(_plain(s.text).split()))
        for s in segments
    ]


def _ts(ms: int, sep: str) -> str:
    h, rem = divmod(int(ms), 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{milli:03d}"


def _parse_ts(text: str) -> int:
    m = re.fullmatch(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})", text.strip())
    if not m:
        raise ExportError(f"bad cue timestamp {text!r}")
    h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return ((h * 60 + mi) * 60 + s) * 1000 + ms


def _vtt_escape(text: str) -> str:
    # WebVTT cue text must not contain a raw '<' or '&', nor the '-->' arrow.
    return html.escape(text, quote=False)


def export_vtt(view: SessionView) -> str:
    return cues_vtt(segment_cues(view.units()), view.title)


def export_srt(view: SessionView) -> str:
    return cues_srt(segment_cues(view.units()))


def cues_vtt(cues: Iterable[Cue], title: str = "") -> str:
    lines = ["WEBVTT", ""]
    if title:
        lines[0] = f"WEBVTT - {_plain(title)}".replace("-->", "->")
    for i, c in enumerate(cues, 1):
        speaker = c.speaker.replace(">", "").replace("\n", " ")
        lines += [str(i), f"{_ts(c.start_ms, '.')} --> {_ts(c.end_ms, '.')}", f"<v {speaker}>{_vtt_escape(c.text)}", ""]
    return "\n".join(lines)


def cues_srt(cues: Iterable[Cue]) -> str:
    # SRT has no voice tag; the usual convention is a "Speaker: " prefix, which players show as-is.
    lines: list[str] = []
    for i, c in enumerate(cues, 1):
        lines += [str(i), f"{_ts(c.start_ms, ',')} --> {_ts(c.end_ms, ',')}", f"{c.speaker}: {c.text}", ""]
    return "\n".join(lines)


def _blocks(text: str) -> list[list[str]]:
    return [b.splitlines() for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if b.strip()]


def parse_vtt(text: str) -> list[Cue]:
    blocks = _blocks(text)
    if not blocks or not blocks[0][0].startswith("WEBVTT"):
        raise ExportError("not a WebVTT file: first line is not 'WEBVTT'")
    cues = []
    for block in blocks[1:]:
        idx = next((i for i, line in enumerate(block) if "-->" in line), None)
        if idx is None:
            continue  # NOTE / STYLE blocks
        start, end = block[idx].split("-->")
        body = " ".join(block[idx + 1 :])
        m = re.match(r"<v(?:\.[\w.]+)? ([^>]*)>(.*?)(?:</v>)?$", body)
        speaker, body = (m.group(1), m.group(2)) if m else ("", body)
        cues.append(Cue(_parse_ts(start), _parse_ts(end.split()[0]), speaker, html.unescape(body)))
    return cues


def parse_srt(text: str) -> list[Cue]:
    cues = []
    for block in _blocks(text):
        idx = next((i for i, line in enumerate(block) if "-->" in line), None)
        if idx is None:
            raise ExportError(f"not an SRT file: cue {block[0]!r} has no timing line")
        start, end = block[idx].split("-->")
        body = " ".join(block[idx + 1 :])
        speaker, sep, rest = body.partition(": ")
        if not sep:
            speaker, rest = "", body
        cues.append(Cue(_parse_ts(start), _parse_ts(end), speaker, rest))
    return cues


# --- Markdown debrief ------------------------------------------------------------------------------


# Line breaks of any kind become a space (a note stays on its own line); control characters (NUL,
# ESC of ANSI sequences, C1) and bidi/invisible format characters (U+202E "Trojan Source" and kin)
# become U+FFFD, visibly, so text can neither drive a terminal nor reorder what a reader sees.
_LINE_BREAKS = re.compile("[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
_UNSAFE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


def _plain(text: str) -> str:
    """Text from the log made safe to print: one line, no control or bidi characters."""
    return _UNSAFE.sub("\ufffd", _LINE_BREAKS.sub(" ", text).replace("\t", " "))


def _md(text: str) -> str:
    """Escape what would turn transcript text into Markdown markup (after `_plain`)."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", _plain(text))


def export_markdown(view: SessionView, labels: dict[str, str]) -> str:
    started = ""
    if view.started_ts:
        started = _dt.datetime.fromtimestamp(view.started_ts, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    units = view.units()
    speakers = view.started.speakers if view.started else sorted({u.speaker for u in units})
    out = [f"# Interview debrief: {_md(view.title or view.session_id)}", ""]
    out += [
        f"- Session: `{view.session_id}`",
        f"- Started: {started or 'unknown'}",
        f"- Duration: {fmt_ms(view.duration_ms())}",
        f"- Rubric: {_md(view.rubric)}",
        f"- Speakers: {', '.join(_md(s) for s in speakers)}",
        f"- Turns: {len(units)}; tags standing: {len(view.active_tags())} of {len(view.tags)}; "
        f"notes: {len(view.notes)}",
        "",
        "## Summary by tag",
        "",
    ]
    summaries = summarize(view, labels)
    if summaries:
        out += [
            "| Tag | Count | First | Last | Confirmed by a human | Rejected | By source |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for s in summaries:
            src = ", ".join(f"{k} {v}" for k, v in sorted(s.by_source.items())) or "-"
            out.append(
                f"| {_md(s.label)} | {s.count} | {fmt_ms(s.first_ms)} | {fmt_ms(s.last_ms)} | "
                f"{s.confirmed} | {s.rejected} | {src} |"
            )
        out.append("")
    else:
        out += ["No tags.", ""]
    for s in summaries:
        out += [f"### {_md(s.label)} ({s.count})", ""]
        if not s.quotes:
            out += ["No standing tags.", ""]
            continue
        for q in s.quotes:
            out.append(
                f'- [{fmt_ms(q.start_ms)}] **{_md(q.speaker or "?")}**: "{_md(q.text)}" '
                f"({_md(q.source)}, {q.status}, confidence {q.confidence:.2f}"
                f"{f', {q.support} raters' if q.support > 1 else ''})"
            )
        out.append("")
    # A tag the machine withdrew itself (retracted) was never put to a person.
    verdicts = [(t, t.human_verdict()) for t in view.tags if not t.human and t.status != "retracted"]
    kept = [(t, v) for t, v in verdicts if v and v[0] in ("confirmed", "edited")]
    rejected = [(t, v) for t, v in verdicts if v and v[0] == "rejected"]
    unreviewed = sum(1 for _, v in verdicts if v is None)
    out += ["## Human review of the copilot's tags", ""]
    out.append(f"{len(kept)} confirmed, {len(rejected)} rejected, {unreviewed} not reviewed by a person.")
    out.append("")
    for title, rows in (("Confirmed", kept), ("Rejected", rejected)):
        for t, (status, who) in rows:
            verb = (
                "Confirmed"
                if title == "Confirmed" and status == "confirmed"
                else ("Edited" if status == "edited" else "Rejected")
            )
            out.append(
                f"- {verb} by {_md(who)}: {_md(labels.get(t.tag.tag, t.tag.tag))} at "
                f'{fmt_ms(t.tag.start_ms)}: "{_md(t.tag.evidence)}" ({_md(t.source)})'
            )
    if kept or rejected:
        out.append("")
    out += ["## Notes", ""]
    if view.notes:
        for n in view.notes:
            when = f"[{fmt_ms(n.at_ms)}] " if n.at_ms is not None else ""
            who = f" ({_md(actors.display_name(n.by))})" if n.by else ""
            out.append(f"- {when}{_md(n.text)}{who}")
    else:
        out.append("No notes.")
    out += ["", "## Transcript", ""]
    by_unit: dict[str, list[str]] = {}
    unit_of = view.unit_of(units)
    for t in view.active_tags():
        unit = tag_unit(t.tag, units, unit_of)
        if unit is not None:
            by_unit.setdefault(unit.id, []).append(labels.get(t.tag.tag, t.tag.tag))
    for seg in units:
        tags = sorted(set(by_unit.get(seg.id, [])))
        marks = f" _[{'; '.join(_md(x) for x in tags)}]_" if tags else ""
        out.append(f"**[{fmt_ms(seg.start_ms)}] {_md(seg.speaker)}:** {_md(seg.text)}{marks}  ")
    out.append("")
    return "\n".join(out)
