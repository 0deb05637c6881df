// Generated from copilot/events.py by `python -m copilot.server.events_js > web/events.js`; do not edit.
// tests/test_fold_cases.py fails when this file and the Python vocabulary differ.

export const SCHEMA_VERSION = 1;

// Event types (`type` of the envelope).
export const EVENT = Object.freeze({
  SESSION_STARTED: "session.started",
  SESSION_ENDED: "session.ended",
  SEGMENT_PARTIAL: "segment.partial",
  SEGMENT_FINAL: "segment.final",
  TURN_FINAL: "turn.final",
  TAG_PROPOSED: "tag.proposed",
  TAG_UPDATED: "tag.updated",
  TAG_ADDED: "tag.added",
  NOTE_ADDED: "note.added",
  CONSENT_CONFIRMED: "consent.confirmed",
  STATUS: "status",
  CONTROL: "control",
});

// Kinds of `control` events (`data.kind`).
export const CONTROL = Object.freeze({
  CAUGHT_UP: "caught_up",
  AUDIO_CLOCK: "audio_clock",
  ASR_LAG: "asr_lag",
});

// A tag's status.
export const TAG_STATUS = Object.freeze({
  PROPOSED: "proposed",
  CONFIRMED: "confirmed",
  REJECTED: "rejected",
  EDITED: "edited",
  RETRACTED: "retracted",
});

// Control kinds the store keeps (the others arrive with `seq: null`).
export const PERSISTED_CONTROL = Object.freeze(["audio_clock"]);

// Statuses of tags that do not stand (not shown as live tags, not counted).
export const NOT_STANDING = Object.freeze(["rejected", "retracted"]);
