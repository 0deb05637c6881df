// The interviewer's live side panel: one view of the session's event log.
//
// Every change on screen comes from an event the server sent; the interviewer's actions are sent as ops over the
// websocket and show only once the server echoes the resulting event (the log is the truth). A test hook,
// window.__copilot, exposes the received seqs and a way to drop the connection.

import {
  EventSocket, TagBook, actorName, apiGet, el, evidenceRanges, fmtTime, hideToast, highlightEvidence, isHuman,
  isStanding, isTypingTarget, pageParams, rubricView, showToast, sourceLabel, speakerKind, statusText, tagInfo,
} from "./common.js";
import { CONTROL, EVENT, TAG_STATUS } from "./events.js";
import { applyAudioStatus, showLevels } from "./panel-audio.js";

const $ = (id) => document.getElementById(id);

const params = pageParams();
const state = {
  rubric: rubricView(null),
  speakers: [],
  segments: new Map(), // id -> segment payload (its text replaced by its turn's once that settles)
  turnRevision: new Map(), // turn id -> the revision shown
  items: [], // segments and notes in session-time order: {kind: "seg", seg} | {kind: "note", note, at}
  turnOf: new Map(), // segment id -> its turn {node, text, chips, speaker, startMs, endMs, segIds}
  lastTurn: null, // the turn a new segment may join
  partials: new Map(), // channel -> <li>
  tags: new TagBook(),
  notes: new Map(),
  hidden: new Set(), // tag ids (rubric ids) filtered out
  selectedId: null,
  followNewest: true, // selection follows the newest AI tag until the user moves it
  nowMs: 0, // session time: the latest end_ms seen
  ended: false,
  seqs: [], // every persisted seq applied, in order (test hook)
  partialCount: 0,
  autoScroll: true,
};

// ---------------------------------------------------------------------------------------------- connection

const CONN_TEXT = {
  connecting: "connecting…",
  "catching-up": "catching up…",
  live: "live",
  reconnecting: "reconnecting…",
  failed: "disconnected",
};

let everLive = false;

function onConnState(s, info) {
  const conn = $("conn");
  conn.dataset.state = s;
  let text = CONN_TEXT[s] || s;
  if (s === "catching-up" && !everLive) text = "loading…";
  if (s === "live") everLive = true;
  if (s === "live" && state.ended) text = "ended";
  if (s === "failed") {
    const why = info.code === 4401 || info.code === 1008 ? "access denied (check the link's token)"
      : info.code === 4404 ? "no such session" : info.code === 4403 ? "origin refused" : "closed";
    text = "disconnected";
    showToast(`Connection refused: ${why}.`, "error", 0);
  }
  conn.dataset.ended = String(state.ended);
  $("conn-text").textContent = text;
  conn.setAttribute("aria-label", `Connection: ${text}`);
  updateActionButtons();
}

const socket = new EventSocket({
  session: params.session,
  token: params.token,
  rater: params.rater,
  onEvent: applyEvent,
  onState: onConnState,
});

function send(op) {
  if (!socket.send(op)) {
    showToast("Not connected: action not sent. Try again once live.", "error");
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------- events

function applyEvent(ev) {
  if (ev.seq !== null && ev.seq !== undefined) state.seqs.push(ev.seq);
  const d = ev.data || {};
  switch (ev.type) {
    case EVENT.SESSION_STARTED:
      if (d.title) setTitle(d.title);
      if (d.speakers) state.speakers = d.speakers;
      break;
    case EVENT.SESSION_ENDED:
      state.ended = true;
      clearPartials();
      $("session-state").textContent = "session ended";
      if (socket.state === "live") onConnState("live", {});
      break;
    case EVENT.SEGMENT_PARTIAL:
      state.partialCount++;
      showPartial(d);
      advanceNow(d.end_ms);
      break;
    case EVENT.SEGMENT_FINAL:
      addSegment(d);
      advanceNow(d.end_ms);
      break;
    case EVENT.TURN_FINAL:
      settleTurn(d);
      break;
    case EVENT.TAG_PROPOSED:
    case EVENT.TAG_ADDED:
    case EVENT.TAG_UPDATED: {
      const before = ev.type === EVENT.TAG_UPDATED ? state.tags.get(d.tag_id) : null;
      const oldSegments = before ? [...before.segment_ids] : [];
      const tag = state.tags.apply(ev);
      if (!tag) break;
      if (ev.type === EVENT.TAG_UPDATED) settlePending(tag.id);
      advanceNow(tag.end_ms);
      const touched = new Set([...oldSegments, ...tag.segment_ids]);
      const newSelection = (ev.type !== EVENT.TAG_UPDATED && !isHuman(tag.source) && state.followNewest)
        || (ev.type === EVENT.TAG_ADDED && !state.selectedId);
      if (newSelection && state.selectedId !== tag.id) {
        const prev = state.selectedId && state.tags.get(state.selectedId);
        if (prev) prev.segment_ids.forEach((sid) => touched.add(sid));
        state.selectedId = tag.id;
      }
      for (const sid of touched) renderSegmentTags(sid);
      renderTimeline();
      renderFilters();
      renderLatest();
      break;
    }
    case EVENT.NOTE_ADDED:
      addNote(d);
      break;
    case EVENT.STATUS:
      applyStatus(d, ev.seq);
      break;
    case EVENT.CONTROL:
      if (d.kind === CONTROL.ASR_LAG) {
        showLag(d.asr_lag_ms);
        if (Array.isArray(d.levels_db)) showLevels(d.levels_db, state.speakers);
      }
      break;
    default:
      break;
  }
}

function showLag(ms) {
  const lag = ms / 1000;
  const node = $("asr-status");
  node.textContent = `ASR lag ${lag.toFixed(1)} s`;
  node.dataset.level = lag > 3 ? "warning" : "ok";
}

function applyStatus(d, seq) {
  applyAudioStatus(d, state.speakers);
  if (d.asr_lag_ms !== null && d.asr_lag_ms !== undefined) showLag(d.asr_lag_ms);
  if (d.tagger) $("tagger-status").textContent = `tagger ${d.tagger}`;
  if (d.component === "tagger" && d.level !== "info") {
    // Also from catch-up: a panel opened late must still say that tags are not coming.
    const node = $("tagger-status");
    node.textContent = "tagger ⚠";
    node.title = d.message || "";
    node.dataset.level = "warning";
  }
  if (d.level === "error" && (seq === null || seq === undefined) && pending) {
    settlePending(pending.tagId);
    updateActionButtons();
  }
  if (d.level === "error" || d.level === "warning") {
    // Catch-up replays old errors; show only those arriving live, briefly.
    if (seq === null || seq === undefined || socket.state === "live") {
      showToast(`${d.component ? d.component + ": " : ""}${d.message || "error"}`, d.level);
    }
  }
}

function advanceNow(ms) {
  if (typeof ms === "number" && ms > state.nowMs) {
    state.nowMs = ms;
    $("timeline-end").textContent = fmtTime(state.nowMs);
    scheduleTimeline();
  }
}

// ---------------------------------------------------------------------------------------------- transcript

const transcript = $("transcript");

function speakerName(name) {
  return name ? name.charAt(0).toUpperCase() + name.slice(1) : "Speaker";
}

// The transcript is a list of turns: consecutive segments of one speaker flow as one paragraph (the ASR commits
// a long answer in many short segments), each segment an inline <span> that its tags tint and mark.
// state.items holds segments and notes in session-time order; appending is the common case, and an item that
// belongs earlier (two channels commit out of order) rebuilds the list.
const TURN_GAP_MS = 8000; // a pause this long starts a new paragraph
const TURN_MAX_MS = 45000; // and so does a very long answer, so that times stay close to the words

function itemAt(item) {
  return item.kind === "seg" ? item.seg.start_ms : item.at;
}

function placeItem(item) {
  const items = state.items;
  const at = itemAt(item);
  if (!items.length || itemAt(items[items.length - 1]) <= at) {
    items.push(item);
    appendItem(item);
    return;
  }
  let i = items.length;
  while (i > 0 && itemAt(items[i - 1]) > at) i--;
  items.splice(i, 0, item);
  rebuildTranscript();
}

function rebuildTranscript() {
  const partials = [...state.partials.values()];
  transcript.replaceChildren();
  state.turnOf.clear();
  state.lastTurn = null;
  for (const item of state.items) appendItem(item, { render: false });
  transcript.append(...partials);
  renderAllTags();
}

function appendItem(item, { render = true } = {}) {
  const before = firstPartial();
  if (item.kind === "note") {
    transcript.insertBefore(noteNode(item.note, item.at), before);
    state.lastTurn = null;
    return;
  }
  const seg = item.seg;
  let turn = state.lastTurn;
  const joins = turn && turn.speaker === seg.speaker && seg.start_ms - turn.endMs <= TURN_GAP_MS
    && seg.end_ms - turn.startMs <= TURN_MAX_MS;
  if (!joins) {
    turn = newTurn(seg);
    transcript.insertBefore(turn.node, before);
    state.lastTurn = turn;
  }
  turn.segIds.push(seg.id);
  turn.endMs = Math.max(turn.endMs, seg.end_ms);
  const span = el("span", { class: "seg", id: `seg-${seg.id}`, dataset: { segId: seg.id } });
  turn.text.append(span, " ");
  state.turnOf.set(seg.id, turn);
  if (render) renderSegmentTags(seg.id);
}

function firstPartial() {
  for (const node of state.partials.values()) if (node.parentNode === transcript) return node;
  return null;
}

function newTurn(seg) {
  const kind = speakerKind(seg.speaker);
  const text = el("p", { class: "turn-text" });
  const chips = el("div", { class: "seg-tags" });
  const node = el("li", { class: `turn turn--${kind}`, dataset: { speaker: seg.speaker } },
    el("div", { class: "seg-meta" },
      el("span", { class: "seg-speaker" },
        el("span", { class: "speaker-badge", "aria-hidden": "true" },
          kind === "interviewer" ? "I" : kind === "candidate" ? "C" : "?"),
        speakerName(seg.speaker)),
      el("time", { class: "seg-time", datetime: `PT${Math.floor(seg.start_ms / 1000)}S` }, fmtTime(seg.start_ms))),
    text, chips);
  return { node, text, chips, speaker: seg.speaker, startMs: seg.start_ms, endMs: seg.end_ms, segIds: [] };
}

function addSegment(seg) {
  if (state.segments.has(seg.id)) return;
  state.segments.set(seg.id, seg);
  removePartial(seg.channel ?? 0);
  placeItem({ kind: "seg", seg });
  afterGrowth();
}

// A settled turn (decoded again as a whole) takes the place of its fragments in the same paragraph:
// the first fragment's span shows the turn's text and the others empty, so nothing moves, and a
// selected tag stays selected (its chip follows the fragments to the turn by a tag.updated).
function settleTurn(turn) {
  const ids = (turn.segment_ids || []).filter((id) => state.segments.has(id));
  const revision = turn.revision || 0;
  if (!ids.length || (state.turnRevision.get(turn.id) ?? -1) > revision) return;
  state.turnRevision.set(turn.id, revision);
  ids.forEach((id, i) => {
    const seg = state.segments.get(id);
    state.segments.set(id, { ...seg, text: i === 0 ? turn.text : "", turn_id: turn.id });
    const span = document.getElementById(`seg-${id}`);
    if (span) {
      span.classList.add("seg--settled");
      span.dataset.turnId = turn.id;
    }
    renderSegmentTags(id, { chips: i === ids.length - 1 });
  });
}

function showPartial(p) {
  const channel = p.channel ?? 0;
  let node = state.partials.get(channel);
  const kind = speakerKind(p.speaker);
  if (!node) {
    node = el("li", { class: `partial turn--${kind}`, "aria-hidden": "true" },
      el("span", { class: "seg-speaker" }, speakerName(p.speaker)), " ",
      el("span", { class: "partial-text" }));
    state.partials.set(channel, node);
    transcript.append(node);
  }
  // The line's own ellipsis (CSS) marks it as unfinished; drop the recognizer's trailing dots.
  node.querySelector(".partial-text").textContent = p.text.replace(/\s*(\.\.\.|…)\s*$/, "");
  afterGrowth();
}

function removePartial(channel) {
  const node = state.partials.get(channel);
  if (node) node.remove();
  state.partials.delete(channel);
}

function clearPartials() {
  for (const channel of [...state.partials.keys()]) removePartial(channel);
}

function addNote(note) {
  if (state.notes.has(note.id)) return;
  state.notes.set(note.id, note);
  placeItem({ kind: "note", note, at: note.at_ms ?? state.nowMs });
  afterGrowth();
}

function noteNode(note, at) {
  return el("li", { class: "note", id: `note-${note.id}` },
    el("div", { class: "seg-meta" },
      el("span", { class: "note-kicker" }, "✎ Note", note.by ? ` · ${actorName(note.by)}` : ""),
      el("time", { class: "seg-time" }, fmtTime(at))),
    el("p", { class: "note-text" }, note.text));
}

// A retracted tag was withdrawn by the machine (merged into its turn's tag): no chip, no tick.
function visibleTag(tag) {
  return tag.status !== TAG_STATUS.RETRACTED && !state.hidden.has(tag.tag);
}

function tagsOfSegment(segId) {
  const tags = [];
  for (const t of state.tags.tags.values()) if (t.segment_ids.includes(segId)) tags.push(t);
  return tags.sort((a, b) => a.start_ms - b.start_ms || a.arrival - b.arrival);
}

function chip(tag) {
  const info = tagInfo(state.rubric, tag.tag);
  const st = statusText(tag);
  const human = isHuman(tag.source);
  const selected = tag.id === state.selectedId;
  return el("button", {
    type: "button",
    class: `chip chip--${tag.status}${selected ? " is-selected" : ""}${human ? " chip--human" : ""}`,
    style: { "--c": info.colour, "--ink": info.ink },
    dataset: { tagId: tag.id, tag: tag.tag, status: tag.status, source: tag.source },
    "aria-pressed": selected ? "true" : "false",
    "aria-label": `${info.label}, ${st.text}, by ${sourceLabel(tag.source)}. Select`,
    title: `${info.label} · ${st.text}${tag.by ? " by " + actorName(tag.by) : ""} · ${sourceLabel(tag.source)}`,
    onclick: () => select(tag.id, { scroll: false }),
  },
  el("span", { class: "chip-code", "aria-hidden": "true" }, info.code),
  el("span", { class: "chip-label" }, info.label),
  human ? el("span", { class: "chip-who" }, sourceLabel(tag.source) === params.rater ? "you" : sourceLabel(tag.source)) : null,
  tag.status === TAG_STATUS.PROPOSED ? null : el("span", { class: "chip-status", "aria-hidden": "true" }, st.symbol));
}

// One segment's text with its tags' evidence marked, its tint, and a small code per tag at its end;
// then (unless told not to) the chips of its turn.
function renderSegmentTags(segId, { chips = true } = {}) {
  const turn = state.turnOf.get(segId);
  const seg = state.segments.get(segId);
  const span = document.getElementById(`seg-${segId}`);
  if (!turn || !seg || !span) return;
  if (!seg.text) { // a fragment whose settled turn is shown in its first fragment's place
    span.replaceChildren();
    span.classList.remove("seg--tagged", "seg--selected");
    if (chips) renderTurnChips(turn);
    return;
  }
  const tags = tagsOfSegment(segId).filter(visibleTag);
  const live = tags.filter((t) => isStanding(t));
  const ranges = [];
  for (const tag of live) {
    const info = tagInfo(state.rubric, tag.tag);
    for (const [start, end] of evidenceRanges(seg.text, tag.evidence)) {
      // A human tag's evidence is its whole segment: the tint already says so.
      if (isHuman(tag.source) && start === 0 && end >= seg.text.trim().length) continue;
      ranges.push({ start, end, colour: info.colour, title: info.label, className: "evidence" });
    }
  }
  span.replaceChildren(highlightEvidence(seg.text, ranges),
    ...[...new Set(live.map((t) => t.tag))].map((id) => {
      const info = tagInfo(state.rubric, id);
      return el("sup", { class: "seg-code", style: { "--c": info.colour, "--ink": info.ink }, "aria-hidden": "true" }, info.code);
    }));
  span.classList.toggle("seg--tagged", live.length > 0);
  span.classList.toggle("seg--selected", tags.some((t) => t.id === state.selectedId));
  if (live.length) span.style.setProperty("--c", tagInfo(state.rubric, live[0].tag).colour);
  else span.style.removeProperty("--c");
  if (chips) renderTurnChips(turn);
}

function renderAllTags() {
  for (const segId of state.segments.keys()) renderSegmentTags(segId, { chips: false });
  for (const turn of new Set(state.turnOf.values())) renderTurnChips(turn);
}

// Re-rendering replaces buttons; a keyboard user on one of them keeps their place.
function keepFocus(container, render) {
  const active = document.activeElement;
  const tagId = active && container.contains(active) ? active.dataset.tagId : null;
  render();
  if (tagId) {
    const again = container.querySelector(`[data-tag-id="${CSS.escape(tagId)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

function renderTurnChips(turn) {
  const ids = new Set(turn.segIds);
  const tags = state.tags.ordered().filter((t) => visibleTag(t) && t.segment_ids.some((id) => ids.has(id)));
  keepFocus(turn.chips, () => turn.chips.replaceChildren(...tags.map(chip)));
  const first = tags.find((t) => isStanding(t));
  turn.node.classList.toggle("turn--tagged", Boolean(first));
  turn.node.classList.toggle("turn--selected", tags.some((t) => t.id === state.selectedId));
  if (first) turn.node.style.setProperty("--c", tagInfo(state.rubric, first.tag).colour);
  else turn.node.style.removeProperty("--c");
  if (state.autoScroll) scrollToBottom();
}

// ---------------------------------------------------------------------------------------------- auto-scroll

const wrap = document.querySelector(".transcript-wrap");

function atBottom() {
  return wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 40;
}

function afterGrowth() {
  if (state.autoScroll) {
    scrollToBottom();
  } else {
    $("jump-live").hidden = false;
  }
}

// Auto-scroll stops only when the user scrolls up; content growing under a pinned view does not count.
let lastAutoTop = 0;
function scrollToBottom() {
  wrap.scrollTop = wrap.scrollHeight;
  lastAutoTop = wrap.scrollTop;
}

let programmaticScroll = false;
wrap.addEventListener("scroll", () => {
  if (programmaticScroll) return;
  if (atBottom()) {
    state.autoScroll = true;
    lastAutoTop = wrap.scrollTop;
  } else if (wrap.scrollTop < lastAutoTop - 4) {
    state.autoScroll = false;
  }
  $("jump-live").hidden = state.autoScroll;
}, { passive: true });

function jumpToLive() {
  state.autoScroll = true;
  $("jump-live").hidden = true;
  scrollToBottom();
}

$("jump-live").addEventListener("click", jumpToLive);

function scrollToSegment(segId) {
  const node = document.getElementById(`seg-${segId}`);
  if (!node) return;
  const top = node.getBoundingClientRect().top - wrap.getBoundingClientRect().top + wrap.scrollTop;
  const visible = top >= wrap.scrollTop && top + node.getBoundingClientRect().height <= wrap.scrollTop + wrap.clientHeight;
  if (visible) return;
  state.autoScroll = false;
  programmaticScroll = true;
  wrap.scrollTop = Math.max(0, top - wrap.clientHeight / 3);
  lastAutoTop = wrap.scrollTop;
  requestAnimationFrame(() => {
    programmaticScroll = false;
    state.autoScroll = atBottom();
    $("jump-live").hidden = state.autoScroll;
  });
}

// ---------------------------------------------------------------------------------------------- latest card

function selectedTag() {
  return state.selectedId ? state.tags.get(state.selectedId) : null;
}

function navigableTags() {
  return state.tags.ordered().filter(visibleTag);
}

function renderLatest() {
  const tag = selectedTag();
  const body = $("latest-body");
  const section = $("latest");
  const all = navigableTags();
  section.dataset.empty = tag ? "false" : "true";
  if (!tag) {
    $("latest-heading").textContent = "Latest tag";
    $("latest-nav").textContent = all.length ? `${all.length} tags` : "";
    section.style.removeProperty("--c");
    $("latest-status").hidden = true;
    body.replaceChildren(el("p", { class: "latest-empty" },
      "No tags yet. Tags appear here as the candidate speaks; press a number key to tag the moment yourself."));
    updateActionButtons();
    return;
  }
  const info = tagInfo(state.rubric, tag.tag);
  const st = statusText(tag);
  const newestAi = newestAiTag();
  const isNewest = newestAi && newestAi.id === tag.id;
  $("latest-heading").textContent = isNewest ? "Latest tag" : "Selected tag";
  const idx = all.findIndex((t) => t.id === tag.id);
  $("latest-nav").textContent = idx >= 0 ? `· ${idx + 1} of ${all.length}` : "";
  section.style.setProperty("--c", info.colour);
  section.style.setProperty("--ink", info.ink);
  section.dataset.status = tag.status;
  const status = $("latest-status");
  status.hidden = false;
  status.className = `latest-status status--${tag.status}`;
  status.textContent = `${st.symbol} ${st.text}${tag.by ? " · " + actorName(tag.by) : ""}`;
  const human = isHuman(tag.source);
  body.replaceChildren(
    el("div", { class: "latest-title" },
      el("span", { class: "latest-code", "aria-hidden": "true" }, info.code),
      el("span", { class: "latest-label" }, info.label)),
    el("div", { class: "latest-meta" },
      el("span", {}, speakerName(tag.speaker || segmentSpeaker(tag))),
      el("span", { "aria-hidden": "true" }, "·"),
      el("time", {}, fmtTime(tag.start_ms)),
      el("span", { "aria-hidden": "true" }, "·"),
      el("span", { class: "latest-source" }, human ? `tagged by ${sourceLabel(tag.source)}` : `⚙ ${sourceLabel(tag.source)}`),
      tag.confidence !== undefined && !human ? el("span", { class: "latest-conf" }, `${Math.round(tag.confidence * 100)}%`) : null),
    tag.evidence
      ? el("blockquote", { class: "latest-quote" }, `“${tag.evidence}”`)
      : el("p", { class: "latest-quote latest-quote--none" }, segmentText(tag) || "(no quote)"),
    tag.rationale ? el("p", { class: "latest-why" }, tag.rationale) : null,
  );
  updateActionButtons();
}

function segmentSpeaker(tag) {
  const seg = state.segments.get(tag.segment_ids[0]);
  return seg ? seg.speaker : "";
}

function segmentText(tag) {
  return tag.segment_ids.map((id) => (state.segments.get(id) || {}).text || "").join(" ").trim();
}

function newestAiTag() {
  let newest = null;
  for (const t of state.tags.tags.values()) {
    if (isHuman(t.source) || t.status === TAG_STATUS.RETRACTED) continue;
    if (!newest || t.arrival > newest.arrival) newest = t;
  }
  return newest;
}

function updateActionButtons() {
  const tag = selectedTag();
  const live = socket.state === "live" || socket.state === "catching-up";
  const busy = Boolean(tag && pending && pending.tagId === tag.id);
  const confirm = $("btn-confirm");
  const reject = $("btn-reject");
  confirm.disabled = !tag || !live || busy || tag.status === TAG_STATUS.CONFIRMED;
  reject.disabled = !tag || !live || busy || tag.status === TAG_STATUS.REJECTED;
  confirm.setAttribute("aria-busy", String(busy && pending.op === "confirm"));
  reject.setAttribute("aria-busy", String(busy && pending.op === "reject"));
  const n = navigableTags().length;
  $("btn-prev").disabled = n === 0;
  $("btn-next").disabled = n === 0;
}

function select(id, { scroll = true, follow = false } = {}) {
  const prev = state.selectedId;
  state.selectedId = id;
  state.followNewest = follow;
  for (const tid of [prev, id]) {
    const tag = tid && state.tags.get(tid);
    if (tag) for (const sid of tag.segment_ids) renderSegmentTags(sid);
  }
  renderLatest();
  renderTimeline();
  const tag = selectedTag();
  if (scroll && tag && tag.segment_ids.length) scrollToSegment(tag.segment_ids[0]);
}

function move(step) {
  const all = navigableTags();
  if (!all.length) return;
  let idx = all.findIndex((t) => t.id === state.selectedId);
  if (idx < 0) idx = step > 0 ? -1 : all.length;
  idx = Math.min(all.length - 1, Math.max(0, idx + step));
  select(all[idx].id);
}

// A verdict shows as "sending…" on its button until the server echoes the tag.updated (or says why not).
let pending = null;
function verdict(op) {
  const tag = selectedTag();
  if (!tag) return;
  if (send({ op, tag_id: tag.id })) {
    // Once judged, the selection goes back to following the newest AI tag as it arrives.
    state.followNewest = true;
    clearTimeout(pending && pending.timer);
    pending = {
      tagId: tag.id,
      op,
      timer: setTimeout(() => {
        pending = null;
        updateActionButtons();
        showToast("No answer from the server yet: the action may not have been recorded.", "warning");
      }, 5000),
    };
    updateActionButtons();
  }
}

function settlePending(tagId) {
  if (pending && pending.tagId === tagId) {
    clearTimeout(pending.timer);
    pending = null;
  }
}

// Relabel: `e` arms it for the selected tag; the next rubric hotkey sends an `edit` with that tag id,
// Esc (or any other key) disarms. A mode rather than a menu keeps the hand on the keyboard.
let relabeling = null;
function startRelabel() {
  const tag = selectedTag();
  if (!tag) return;
  relabeling = tag.id;
  const keys = state.rubric.tags.map((t) => `${t.hotkey} ${t.label}`).join(" · ");
  showToast(`Relabel this tag: ${keys} (Esc cancels)`, "info", 8000);
}

function finishRelabel(rubricTag) {
  const tagId = relabeling;
  relabeling = null;
  hideToast();
  if (rubricTag && tagId) send({ op: "edit", tag_id: tagId, tag: rubricTag.id });
}

function addTagNow(rubricTag) {
  const op = { op: "add_tag", tag: rubricTag.id, at_ms: Math.round(state.nowMs) };
  const seg = latestCandidateSegment();
  // Attach to the candidate's latest utterance when it is recent; otherwise mark the bare moment.
  if (seg && state.nowMs - seg.end_ms <= 30000) {
    op.segment_ids = [seg.id];
  }
  send(op);
}

function latestCandidateSegment() {
  let latest = null;
  for (const seg of state.segments.values()) {
    if (speakerKind(seg.speaker) === "interviewer") continue;
    if (!latest || seg.end_ms > latest.end_ms) latest = seg;
  }
  return latest;
}

// ---------------------------------------------------------------------------------------------- timeline

let timelineQueued = false;
function scheduleTimeline() {
  if (timelineQueued) return;
  timelineQueued = true;
  requestAnimationFrame(() => { timelineQueued = false; renderTimeline(); });
}

function renderTimeline() {
  const line = $("timeline");
  const span = Math.max(state.nowMs, 1000);
  const marks = [];
  for (const tag of state.tags.ordered()) {
    if (!visibleTag(tag)) continue;
    const info = tagInfo(state.rubric, tag.tag);
    const rubricIdx = Math.max(0, state.rubric.tags.findIndex((t) => t.id === tag.tag));
    const lanes = Math.max(1, state.rubric.tags.length);
    const left = (100 * tag.start_ms) / span;
    marks.push(el("button", {
      type: "button",
      role: "listitem",
      class: `tick tick--${tag.status}${tag.id === state.selectedId ? " is-selected" : ""}${isHuman(tag.source) ? " tick--human" : ""}`,
      style: {
        "--c": info.colour,
        "--ink": info.ink,
        left: `min(calc(100% - 14px), ${left.toFixed(2)}%)`,
        top: `${((100 * rubricIdx) / lanes).toFixed(2)}%`,
        height: `${(100 / lanes).toFixed(2)}%`,
      },
      dataset: { tagId: tag.id },
      "aria-label": `${info.label} at ${fmtTime(tag.start_ms)}, ${statusText(tag).text}`,
      title: `${info.code} ${info.label} · ${fmtTime(tag.start_ms)} · ${statusText(tag).text}`,
      onclick: () => select(tag.id),
    }, info.code.charAt(0)));
  }
  keepFocus(line, () => line.replaceChildren(...marks));
}

// ---------------------------------------------------------------------------------------------- filters

function renderFilters() {
  const nav = $("filters");
  const counts = new Map();
  for (const t of state.tags.tags.values()) {
    if (isStanding(t)) counts.set(t.tag, (counts.get(t.tag) || 0) + 1);
  }
  nav.replaceChildren(...state.rubric.tags.map((t) => {
    const on = !state.hidden.has(t.id);
    return el("button", {
      type: "button",
      class: `filter${on ? " is-on" : ""}`,
      style: { "--c": t.colour, "--ink": t.ink },
      "aria-pressed": on ? "true" : "false",
      "aria-label": `Show ${t.label} tags (${counts.get(t.id) || 0})`,
      title: `${on ? "Hide" : "Show"} ${t.label} tags`,
      dataset: { tag: t.id },
      onclick: () => toggleFilter(t.id),
    },
    el("span", { class: "filter-code", "aria-hidden": "true" }, t.code),
    el("span", { class: "filter-label" }, t.short),
    el("span", { class: "filter-count" }, String(counts.get(t.id) || 0)));
  }));
}

function toggleFilter(id) {
  if (state.hidden.has(id)) state.hidden.delete(id);
  else state.hidden.add(id);
  renderAllTags();
  renderFilters();
  renderTimeline();
  const tag = selectedTag();
  if (tag && !visibleTag(tag)) state.selectedId = null;
  renderLatest();
}

// ---------------------------------------------------------------------------------------------- compose

function renderTagButtons() {
  const help = $("keys-help");
  help.replaceChildren(
    el("span", { class: "keys-kicker" }, "Tag now"),
    ...state.rubric.tags.map((t) => el("button", {
      type: "button",
      class: "addtag",
      style: { "--c": t.colour, "--ink": t.ink },
      "aria-label": `Tag this moment as ${t.label}${t.hotkey ? ` (key ${t.hotkey})` : ""}`,
      title: `${t.label}: ${t.definition}`,
      dataset: { tag: t.id },
      onclick: () => addTagNow(t),
    }, t.hotkey ? el("kbd", {}, t.hotkey) : null, el("span", { class: "addtag-code" }, t.code))),
    el("span", { class: "keys-more" }, el("kbd", {}, "j"), el("kbd", {}, "k"), " move · ", el("kbd", {}, "e"), " relabel · ",
      el("kbd", {}, "/"), " note"),
  );
}

const note = $("note");

function sendNote() {
  const text = note.value.trim();
  if (!text) return;
  if (send({ op: "note", text, at_ms: Math.round(state.nowMs) })) {
    note.value = "";
  }
}

$("note-form").addEventListener("submit", (e) => { e.preventDefault(); sendNote(); });
note.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendNote(); }
  if (e.key === "Escape") { e.preventDefault(); note.blur(); }
});

// ---------------------------------------------------------------------------------------------- hotkeys

document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (isTypingTarget(e.target)) return;
  const onButton = e.target instanceof HTMLElement && e.target.tagName === "BUTTON";
  const key = e.key;
  const rubricTag = state.rubric.byHotkey.get(key.toLowerCase());
  if (relabeling) { e.preventDefault(); finishRelabel(rubricTag); return; }
  if (rubricTag) { e.preventDefault(); addTagNow(rubricTag); return; }
  switch (key) {
    case "y": case "Y": e.preventDefault(); verdict("confirm"); break;
    case "Enter": if (!onButton) { e.preventDefault(); verdict("confirm"); } break;
    case "n": case "N": case "Backspace": e.preventDefault(); verdict("reject"); break;
    case "j": case "J": e.preventDefault(); move(+1); break;
    case "k": case "K": e.preventDefault(); move(-1); break;
    case "e": case "E": e.preventDefault(); startRelabel(); break;
    case "/": e.preventDefault(); note.focus(); break;
    case "End": case "l": e.preventDefault(); jumpToLive(); break;
    default: break;
  }
});

$("btn-confirm").addEventListener("click", () => verdict("confirm"));
$("btn-reject").addEventListener("click", () => verdict("reject"));
$("btn-prev").addEventListener("click", () => move(-1));
$("btn-next").addEventListener("click", () => move(+1));

function setTitle(title) {
  $("title").textContent = title;
  $("title").title = title;
  document.title = `${title} · copilot`;
}

// Brief messages sit just above the notes box, never over the header's connection state.
new ResizeObserver(([entry]) => {
  document.body.style.setProperty("--compose-h", `${Math.ceil(entry.target.getBoundingClientRect().height)}px`);
}).observe(document.querySelector(".compose"));

// ---------------------------------------------------------------------------------------------- start

async function start() {
  renderFilters();
  renderTagButtons();
  renderLatest();
  if (!params.session || !params.token) {
    onConnState("failed", {});
    showToast("This page needs ?session=<id>&token=<t> in its address (copilot prints the full link).", "error", 0);
    return;
  }
  try {
    const info = await apiGet(`/api/sessions/${encodeURIComponent(params.session)}?token=${encodeURIComponent(params.token)}`, params.token);
    state.rubric = rubricView(info.rubric);
    state.speakers = info.speakers || [];
    if (info.title) setTitle(info.title);
    if (info.status === "ended") $("session-state").textContent = "session ended";
  } catch (err) {
    showToast(`Could not load the session: ${err.message}`, "error", 0);
    if (err.status === 401 || err.status === 404) { onConnState("failed", { code: err.status === 401 ? 4401 : 4404 }); return; }
  }
  renderFilters();
  renderTagButtons();
  renderLatest();
  // The whole log from seq 0: the panel is a pure view of it; REST only supplies the rubric and the title.
  socket.connect();
}

window.__copilot = {
  get seqs() { return [...state.seqs]; },
  get lastSeq() { return socket.lastSeq; },
  get connection() { return socket.state; },
  get duplicates() { return socket.duplicates; },
  get opens() { return socket.opens; },
  get partials() { return state.partialCount; },
  get gaps() { return socket.gaps; },
  get selectedId() { return state.selectedId; },
  dropConnection(holdMs = 0) { socket.drop(holdMs); },
  send(op) { return socket.send(op); }, // a raw client message, as a buggy or hostile client would send
};

start();
