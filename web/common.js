// Shared helpers for the copilot's pages (panel, review, calibration).
// Plain ES module, no build step, no network beyond the page's own server.
//
// What is here, for reuse:
//   pageParams()                -> {session, token, rater} from the page URL (?session=&token=&rater=);
//                                  the token then moves to sessionStorage and out of the address bar
//   apiGet(path, token)         -> parsed JSON of GET /api/...; throws ApiError (status + message) on non-2xx
//   el(tag, attrs, ...children) -> tiny DOM builder (attrs: class, dataset, on<Event>, aria-*, style vars)
//   fmtTime(ms)                 -> "m:ss" (or "h:mm:ss") of session time
//   rubricView(rubric)          -> {tags: [{id,label,short,colour,hotkey,code,ink,definition}], byId, byHotkey}
//   speakerKind(name)           -> "interviewer" | "candidate" | "other" (for styling)
//   highlightEvidence(text, ranges) -> DocumentFragment with <mark> around each evidence quote
//   evidenceRanges(text, quote) -> [[start, end]] where the quote occurs in text (case/space-insensitive)
//   isHuman(actor)              -> whether an actor (`human:<name>`, `rules`, `llm:<model>`, an old bare name) is
//                                  a person; canonicalActor(actor), actorName(actor): mirrors of copilot/actors.py
//   TagBook                     -> folds tag.proposed / tag.added / tag.updated into current tag state, by the
//                                  rules of copilot/session/fold.py (tests/data/fold_cases.json runs on both)
//   TurnBook                    -> folds turn.final: the latest revision of each turn
//   isStanding(tag)             -> neither rejected nor retracted
//   EventSocket                 -> reconnecting websocket for /ws/sessions/{id}: exponential backoff,
//                                  resumes with ?after=<last seq>, drops duplicate seqs
//   isTypingTarget(target)      -> true inside inputs/textareas (so page hotkeys stay out of the way)
//   showToast(msg, level, ms)   -> the page's #toast with a message; hides after ms (0: stays); hideToast()

import { CONTROL, EVENT, NOT_STANDING, TAG_STATUS } from "./events.js";

const TOKEN_KEY = "copilot.token";

export function pageParams(search = window.location.search) {
  const q = new URLSearchParams(search);
  let token = q.get("token") || "";
  if (typeof window !== "undefined" && search === window.location.search) token = keepTokenOutOfUrl(q, token);
  return {
    session: q.get("session") || "",
    token,
    rater: q.get("rater") || "interviewer",
  };
}

// The token arrives in the link copilot prints; once the page has it, it moves to this tab's
// sessionStorage and out of the address bar, so it is not left in the browser's history, in a
// bookmark or in a shared screen. A reload finds it in sessionStorage.
function keepTokenOutOfUrl(q, token) {
  try {
    if (token) {
      window.sessionStorage.setItem(TOKEN_KEY, token);
      q.delete("token");
      const rest = q.toString();
      window.history.replaceState(window.history.state, "", window.location.pathname + (rest ? `?${rest}` : "") + window.location.hash);
      return token;
    }
    return window.sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return token; // storage refused (privacy mode): keep working with the token as given
  }
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function apiGet(path, token) {
  const res = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const body = await res.json();
      detail = body.detail || body.message || detail;
    } catch (_) { /* not JSON: keep the status text */ }
    throw new ApiError(res.status, `${res.status} ${detail}`);
  }
  return res.json();
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, v);
    } else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmtTime(ms) {
  const total = Math.max(0, Math.floor((ms || 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

// Text colour that stays readable on a given background (WCAG relative luminance).
export function inkFor(hex) {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
  if (!m) return "#fff";
  const n = parseInt(m[1], 16);
  const lin = [16, 8, 0].map((shift) => {
    const c = ((n >> shift) & 255) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  return lum > 0.35 ? "#111" : "#fff";
}

// A short code per tag (initials: "Requirement gathering" -> "RG") so that colour is never the only cue.
function shortCode(label, taken) {
  const words = (label || "?").split(/[\s_-]+/).filter(Boolean);
  let code = words.slice(0, 2).map((w) => w[0].toUpperCase()).join("") || "?";
  if (words.length === 1) code = words[0].slice(0, 2).replace(/^./, (c) => c.toUpperCase());
  let candidate = code;
  for (let i = 2; taken.has(candidate); i++) candidate = `${code}${i}`;
  taken.add(candidate);
  return candidate;
}

const FALLBACK_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];

export function rubricView(rubric) {
  const taken = new Set();
  const tags = ((rubric && rubric.tags) || []).map((t, i) => {
    const colour = t.colour || t.color || FALLBACK_COLOURS[i % FALLBACK_COLOURS.length];
    return {
      id: t.id,
      label: t.label || t.id,
      colour,
      ink: inkFor(colour),
      hotkey: t.hotkey ? String(t.hotkey) : "",
      code: shortCode(t.label || t.id, taken),
      short: (t.label || t.id).split(/\s+/)[0],
      definition: t.definition || "",
    };
  });
  const byId = new Map(tags.map((t) => [t.id, t]));
  const byHotkey = new Map(tags.filter((t) => t.hotkey).map((t) => [t.hotkey.toLowerCase(), t]));
  return { tags, byId, byHotkey };
}

// A tag id that the rubric does not know still gets a readable chip.
export function tagInfo(view, id) {
  return view.byId.get(id) || { id, label: id, colour: "#777", ink: "#fff", hotkey: "", code: "?", definition: "" };
}

export function speakerKind(name) {
  const n = (name || "").toLowerCase();
  if (n.startsWith("interviewer") || n === "me") return "interviewer";
  if (n.startsWith("candidate")) return "candidate";
  return "other";
}

// Who acted: mirrors copilot/actors.py (the one rule: a tagger's name, else a person).
const HUMAN = "human:";

export function isHuman(actor) {
  const a = actor || "";
  if (!a) return false;
  if (a.startsWith(HUMAN)) return true;
  return !(a === "rules" || a === "llm" || a.startsWith("rules:") || a.startsWith("llm:") || a.startsWith("copilot:"));
}

// The actor as written today: a bare (old-log) name becomes `human:<name>`.
export function canonicalActor(actor) {
  const a = actor || "";
  return isHuman(a) ? HUMAN + (a.startsWith(HUMAN) ? a.slice(HUMAN.length) : a) : a;
}

// How a page names an actor: a person's plain name, else the actor id.
export function actorName(actor) {
  const a = actor || "";
  return isHuman(a) && a.startsWith(HUMAN) ? a.slice(HUMAN.length) : a;
}

export function sourceLabel(source) {
  if (!source) return "";
  if (isHuman(source)) return actorName(source) || "human";
  if (source.startsWith("llm:")) return "LLM";
  if (source === "rules") return "rules";
  return source;
}

// Where `quote` occurs in `text`, ignoring case and runs of whitespace/punctuation differences at the ends.
// The tagger's evidence is a verbatim span, but a tag may span several segments: then each segment gets the
// part of the quote it holds (longest run of the quote's words found in this segment).
export function evidenceRanges(text, quote) {
  if (!text || !quote) return [];
  const hay = text.toLowerCase();
  const needle = quote.trim().toLowerCase();
  if (!needle) return [];
  const at = hay.indexOf(needle);
  if (at >= 0) return [[at, at + needle.length]];
  // Fall back to the longest run of the quote's words that appears verbatim here.
  const words = needle.split(/\s+/);
  for (let len = words.length - 1; len >= 3; len--) {
    for (let i = 0; i + len <= words.length; i++) {
      const part = words.slice(i, i + len).join(" ");
      const pos = hay.indexOf(part);
      if (pos >= 0) return [[pos, pos + part.length]];
    }
  }
  return [];
}

// ranges: [{start, end, colour, title, className}] possibly overlapping; overlaps merge into the earlier mark.
export function highlightEvidence(text, ranges) {
  const frag = document.createDocumentFragment();
  const sorted = [...ranges].sort((a, b) => a.start - b.start || b.end - a.end);
  let pos = 0;
  let current = null;
  const merged = [];
  for (const r of sorted) {
    if (current && r.start < current.end) {
      current.end = Math.max(current.end, r.end);
      current.titles.push(r.title);
    } else {
      current = { ...r, titles: [r.title] };
      merged.push(current);
    }
  }
  for (const r of merged) {
    if (r.start > pos) frag.append(text.slice(pos, r.start));
    frag.append(el("mark", {
      class: r.className || "evidence",
      title: r.titles.filter(Boolean).join(" · "),
      style: { "--c": r.colour },
    }, text.slice(r.start, r.end)));
    pos = r.end;
  }
  if (pos < text.length) frag.append(text.slice(pos));
  return frag;
}

export function isStanding(tag) {
  return !NOT_STANDING.includes(tag.status);
}

const given = (v) => v !== null && v !== undefined;
const MOVE_FIELDS = ["turn_id", "segment_ids", "start_ms", "end_ms"];

// Current state of every tag, folded from the log. The log is the truth: nothing here changes except by events.
// The rules are copilot/session/fold.py's (docs/events.md, "Folding"); tests/data/fold_cases.json runs on both.
export class TagBook {
  constructor() {
    this.tags = new Map(); // id -> {id, tag, segment_ids, start_ms, end_ms, speaker, evidence, rationale,
    //                               confidence, source, turn_id, status, by, arrival, humanVerdict, humanEvidence}
    this.arrivals = 0;
  }

  // Applies one event; returns the tag it changed (null when nothing changed).
  apply(event) {
    const d = event.data || {};
    if (event.type === EVENT.TAG_PROPOSED || event.type === EVENT.TAG_ADDED) {
      if (this.tags.has(d.id)) return null; // ids are unique: a second start changes nothing
      const added = event.type === EVENT.TAG_ADDED;
      const tag = {
        ...d,
        segment_ids: [...(d.segment_ids || [])],
        status: added ? TAG_STATUS.CONFIRMED : TAG_STATUS.PROPOSED,
        by: added ? canonicalActor(d.source) : (d.source || ""),
        arrival: ++this.arrivals,
        humanVerdict: added, // a person added, confirmed, rejected or edited it
        humanEvidence: added && !!d.evidence, // a person wrote the evidence
      };
      this.tags.set(d.id, tag);
      return tag;
    }
    if (event.type === EVENT.TAG_UPDATED) {
      const tag = this.tags.get(d.tag_id);
      if (!tag) return null; // an update of an unknown tag changes nothing
      const by = canonicalActor(d.by);
      const human = isHuman(by);
      let fields;
      if (tag.humanVerdict && !human) {
        // A person's verdict outranks a later machine update: it may refine, and move the tag, not overrule.
        if (d.status === TAG_STATUS.RETRACTED) return null;
        fields = ["rationale", "confidence", ...MOVE_FIELDS, ...(tag.humanEvidence ? [] : ["evidence"])];
      } else {
        tag.status = d.status;
        tag.by = by;
        fields = ["tag", "evidence", "rationale", "confidence", ...MOVE_FIELDS];
        if (human) {
          tag.humanVerdict = true;
          if (given(d.evidence)) tag.humanEvidence = true;
        }
      }
      for (const f of fields) {
        if (given(d[f])) tag[f] = Array.isArray(d[f]) ? [...d[f]] : d[f];
      }
      return tag;
    }
    return null;
  }

  get(id) { return this.tags.get(id); }

  // Tags in session-time order (ties by arrival).
  ordered() {
    return [...this.tags.values()].sort((a, b) => a.start_ms - b.start_ms || a.arrival - b.arrival);
  }
}

// The latest revision of each settled turn (`turn.final`): the highest revision wins, ties go to the later event.
export class TurnBook {
  constructor() {
    this.turns = new Map(); // id -> Turn payload
  }

  apply(event) {
    if (event.type !== EVENT.TURN_FINAL) return null;
    const d = event.data || {};
    const old = this.turns.get(d.id);
    if (old && (d.revision || 0) < (old.revision || 0)) return null;
    const turn = { ...d, segment_ids: [...(d.segment_ids || [])] };
    this.turns.set(d.id, turn);
    return turn;
  }

  get(id) { return this.turns.get(id); }

  // Turns in session-time order.
  ordered() {
    return [...this.turns.values()].sort((a, b) => a.start_ms - b.start_ms || a.end_ms - b.end_ms);
  }
}

export function statusText(tag) {
  switch (tag.status) {
    case TAG_STATUS.CONFIRMED: return { symbol: "✓", text: "confirmed" };
    case TAG_STATUS.REJECTED: return { symbol: "✗", text: "rejected" };
    case TAG_STATUS.EDITED: return { symbol: "✎", text: "edited" };
    case TAG_STATUS.RETRACTED: return { symbol: "–", text: "retracted" };
    default: return { symbol: "?", text: "proposed" };
  }
}

export function isTypingTarget(target) {
  if (!target || !(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag === "INPUT") return !["button", "checkbox", "radio", "submit", "reset"].includes(target.type);
  return false;
}

let toastTimer = null;
export function showToast(message, level = "info", ms = 5000) {
  const toast = document.getElementById("toast");
  toast.textContent = message;
  toast.dataset.level = level;
  toast.hidden = false;
  clearTimeout(toastTimer);
  if (ms) toastTimer = setTimeout(() => { toast.hidden = true; }, ms);
}

export function hideToast() {
  clearTimeout(toastTimer);
  document.getElementById("toast").hidden = true;
}

// Close codes after which retrying cannot help (bad token, foreign origin, unknown session).
const FATAL_CLOSE_CODES = new Set([1008, 4401, 4403, 4404]);

/**
 * Reconnecting websocket for one session's event log.
 *
 * onEvent(event) gets every event once: persisted events (seq != null) in seq order with duplicates dropped
 * (after a reconnect the server resends from ?after=<last seq>); ephemeral ones (seq null) as they come.
 * onState(state, info) gets "connecting" | "catching-up" | "live" | "reconnecting" | "failed".
 * Backoff doubles from `minDelay` to `maxDelay`, with jitter, and resets once a connection reaches "live".
 */
export class EventSocket {
  constructor({ session, token, rater, after = 0, onEvent, onState, minDelay = 250, maxDelay = 8000 }) {
    this.session = session;
    this.token = token;
    this.rater = rater;
    this.lastSeq = after;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.holdUntil = 0;
    this.closed = false;
    this.state = "connecting";
    this.duplicates = 0;
    this.gaps = 0;
    this.opens = 0;
  }

  url() {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ after: String(this.lastSeq), token: this.token });
    if (this.rater) q.set("rater", this.rater);
    return `${proto}//${window.location.host}/ws/sessions/${encodeURIComponent(this.session)}?${q}`;
  }

  setState(state, info = {}) {
    this.state = state;
    this.onState(state, info);
  }

  connect() {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.setState(this.attempt ? "reconnecting" : "connecting", { attempt: this.attempt });
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.opens++;
      this.setState("catching-up");
    };
    ws.onmessage = (msg) => {
      if (this.ws !== ws) return;
      let event;
      try { event = JSON.parse(msg.data); } catch (_) { return; }
      this.receive(event);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      if (FATAL_CLOSE_CODES.has(ev.code)) {
        this.setState("failed", { code: ev.code, reason: ev.reason });
        return;
      }
      this.scheduleReconnect();
    };
  }

  receive(event) {
    if (event.seq !== null && event.seq !== undefined) {
      if (event.seq <= this.lastSeq) { this.duplicates++; return; }
      if (event.seq !== this.lastSeq + 1) this.gaps++;
      this.lastSeq = event.seq;
    } else if (event.type === EVENT.CONTROL && event.data && event.data.kind === CONTROL.CAUGHT_UP) {
      this.attempt = 0;
      this.setState("live");
    }
    this.onEvent(event);
  }

  scheduleReconnect() {
    const base = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
    const delay = Math.max(base * (0.75 + Math.random() * 0.5), this.holdUntil - Date.now());
    this.attempt++;
    this.setState("reconnecting", { attempt: this.attempt, delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  // Close the current socket as a network drop would (tests, and a manual "reconnect" button).
  drop(holdMs = 0) {
    this.holdUntil = Date.now() + holdMs;
    if (this.ws) this.ws.close(4000, "dropped by client");
    // onclose schedules the reconnect with backoff.
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "page closed");
  }
}
