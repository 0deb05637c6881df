// Review page: one session's transcript with tags, notes, search, filters, per-tag summary,
// jump-to-moment and play-from-segment (when the audio was kept). Reads GET /api/sessions/{id}/review.
import { actorName, apiGet, el, fmtTime, rubricView, tagInfo, speakerKind, sourceLabel, highlightEvidence,
  evidenceRanges, statusText, isHuman, isStanding, isTypingTarget, pageParams, showToast } from "./common.js";

const $ = (id) => document.getElementById(id);
const params = pageParams();
const state = { q: "", tags: new Set(), sources: new Set(), onlyTagged: false, showRejected: true };
let data = null;
let rubric = null;
const segRows = new Map(); // segment id -> {li, seg, textNode, chips: [{node, tag}]}

function segmentAt(ms) {
  let best = null;
  for (const s of data.segments) {
    if (s.start_ms <= ms && ms < s.end_ms) return s;
    if (s.start_ms <= ms) best = s;
  }
  return best;
}

// A tag's row: the turn (unit) holding its turn or fragments, else the one at its start time (a hotkey
// tag at a moment). Rows are units (`data.units`): settled turns, plus fragments no turn settled.
function tagSegments(tag) {
  const ids = [tag.turn_id, ...(tag.segment_ids || [])].filter(Boolean);
  const known = [...new Set(ids.map((id) => data.unitOf.get(id)).filter(Boolean))];
  if (known.length) return known.slice(0, 1);
  const s = segmentAt(tag.start_ms);
  return s ? [s.id] : [];
}

function sourceName(group) {
  if (group === "rules") return "Rules";
  if (group === "llm") return "LLM";
  return actorName(group);
}

function toast(message, level = "error") {
  showToast(message, level, level === "error" ? 8000 : 4000);
}

function tagChip(tag) {
  const info = tagInfo(rubric, tag.tag);
  const st = statusText(tag);
  const group = tag.source_group;
  const human = isHuman(group);
  const who = human ? sourceName(group) : sourceLabel(tag.source);
  const title = [`${info.label} · ${st.text}${tag.by ? " by " + actorName(tag.by) : ""}`, `source: ${tag.source}`,
    tag.evidence ? `“${tag.evidence}”` : "", tag.rationale || ""].filter(Boolean).join("\n");
  return el("span", {
    class: `chip chip--${tag.status}${human ? " chip--human" : ""}`,
    style: { "--c": info.colour, "--ink": info.ink },
    dataset: { tagId: tag.id, tag: tag.tag, source: group, status: tag.status },
    title,
  },
  el("span", { class: "chip-code", "aria-hidden": "true" }, info.code),
  el("span", { class: "chip-label" }, info.label),
  el("span", { class: "chip-who" }, who),
  el("span", { class: "chip-status", "aria-label": st.text }, st.symbol));
}

function render() {
  const list = $("transcript");
  list.replaceChildren();
  segRows.clear();
  const bySeg = new Map();
  for (const tag of data.tags) {
    for (const sid of tagSegments(tag)) {
      if (!bySeg.has(sid)) bySeg.set(sid, []);
      bySeg.get(sid).push(tag);
    }
  }
  const notes = [...data.notes].filter((n) => n.at_ms !== null && n.at_ms !== undefined)
    .sort((a, b) => a.at_ms - b.at_ms);
  let ni = 0;
  const noteRow = (n) => el("li", { class: "rv-note-row", dataset: { noteId: n.id } },
    el("span", { class: "rv-time" }, fmtTime(n.at_ms)),
    el("span", { class: "rv-note-badge" }, "Note"),
    el("span", { class: "rv-note-text" }, n.text, n.by ? el("span", { class: "rv-note-by" }, ` — ${actorName(n.by)}`) : ""));
  for (const seg of data.segments) {
    while (ni < notes.length && notes[ni].at_ms < seg.start_ms) list.append(noteRow(notes[ni++]));
    const tags = bySeg.get(seg.id) || [];
    const chips = tags.map((tag) => ({ node: tagChip(tag), tag }));
    const textNode = el("p", { class: "rv-text" });
    const kind = speakerKind(seg.speaker);
    const timeBtn = el("button", {
      type: "button", class: "rv-time rv-play", title: data.has_audio ? "Play from here" : "Jump here",
      "aria-label": `${data.has_audio ? "Play from" : "Jump to"} ${fmtTime(seg.start_ms)}`,
      onclick: () => (data.has_audio ? playFrom(seg) : jumpTo(seg.id)),
    }, data.has_audio ? el("span", { class: "rv-play-icon", "aria-hidden": "true" }, "▶") : "", fmtTime(seg.start_ms));
    const li = el("li", { class: "rv-seg", id: `seg-${seg.id}`, tabindex: "-1",
      dataset: { segmentId: seg.id, speaker: kind, startMs: seg.start_ms } },
    timeBtn,
    el("div", { class: "rv-body" },
      el("div", { class: "rv-speaker" }, seg.speaker),
      textNode,
      chips.length ? el("div", { class: "rv-chips" }, chips.map((c) => c.node)) : ""));
    list.append(li);
    segRows.set(seg.id, { li, seg, textNode, chips });
  }
  while (ni < notes.length) list.append(noteRow(notes[ni++]));
  applyFilters();
}

function highlightSearch(text, q) {
  const frag = document.createDocumentFragment();
  const hay = text.toLowerCase();
  let pos = 0;
  for (let at = hay.indexOf(q); at >= 0 && q; at = hay.indexOf(q, pos)) {
    frag.append(text.slice(pos, at), el("mark", { class: "rv-hit" }, text.slice(at, at + q.length)));
    pos = at + q.length;
  }
  frag.append(text.slice(pos));
  return frag;
}

function chipVisible(tag) {
  if (!state.tags.has(tag.tag) && rubric.byId.has(tag.tag)) return false;
  if (!state.sources.has(tag.source_group)) return false;
  if (!isStanding(tag) && !state.showRejected) return false;
  return true;
}

function applyFilters() {
  const q = state.q.trim().toLowerCase();
  let shown = 0;
  for (const row of segRows.values()) {
    let visibleChips = 0;
    const ranges = [];
    for (const c of row.chips) {
      const vis = chipVisible(c.tag);
      c.node.hidden = !vis;
      if (vis) {
        visibleChips++;
        if (isStanding(c.tag)) {
          const info = tagInfo(rubric, c.tag.tag);
          for (const [start, end] of evidenceRanges(row.seg.text, c.tag.evidence)) {
            ranges.push({ start, end, colour: info.colour, title: info.label });
          }
        }
      }
    }
    const matches = !q || row.seg.text.toLowerCase().includes(q) || row.seg.speaker.toLowerCase().includes(q);
    const hide = !matches || (state.onlyTagged && visibleChips === 0);
    row.li.hidden = hide;
    if (!hide) shown++;
    row.textNode.replaceChildren(q ? highlightSearch(row.seg.text, q) : highlightEvidence(row.seg.text, ranges));
  }
  for (const li of document.querySelectorAll(".rv-note-row")) {
    li.hidden = Boolean(q && !li.textContent.toLowerCase().includes(q)) || state.onlyTagged;
  }
  const total = segRows.size;
  $("counter").textContent = shown === total ? `${total} turns` : `${shown} of ${total} turns`;
}

function jumpTo(segId) {
  const row = segRows.get(segId);
  if (!row) return;
  if (row.li.hidden) { // the moment is filtered out: clear what hides it
    state.q = ""; $("search").value = "";
    state.onlyTagged = false; $("only-tagged").checked = false;
    applyFilters();
  }
  for (const li of document.querySelectorAll(".rv-seg.is-target")) li.classList.remove("is-target");
  row.li.classList.add("is-target");
  row.li.scrollIntoView({ block: "center", behavior: "instant" });
  row.li.focus({ preventScroll: true });
}

function playFrom(seg) {
  jumpTo(seg.id);
  const audio = $("audio");
  audio.currentTime = seg.start_ms / 1000;
  audio.play().catch((err) => {
    // AbortError: a pause or a new seek interrupted this play() call, which is not a failure.
    if (err && err.name !== "AbortError") toast("The browser would not start playback; press play.", "warning");
  });
}

function jumpButton(ms, segId, label) {
  return el("button", { type: "button", class: "rv-link", onclick: () => jumpTo(segId) }, label ?? fmtTime(ms));
}

function renderSummary() {
  const box = $("summary");
  box.replaceChildren();
  for (const s of data.summary) {
    const info = tagInfo(rubric, s.tag);
    const firstSeg = s.first_ms !== null ? segmentAt(s.first_ms) : null;
    const lastSeg = s.last_ms !== null ? segmentAt(s.last_ms) : null;
    const sources = Object.entries(s.by_source).map(([g, n]) => `${sourceName(g)} ${n}`).join(" · ");
    const card = el("article", { class: "rv-card", style: { "--c": info.colour, "--ink": info.ink },
      dataset: { tag: s.tag } },
    el("header", { class: "rv-card-head" },
      el("span", { class: "chip-code" }, info.code),
      el("h3", {}, info.label),
      el("span", { class: "rv-count", title: "standing tags (not rejected)" }, String(s.count))),
    s.count ? el("p", { class: "rv-card-line" },
      "First ", firstSeg ? jumpButton(s.first_ms, firstSeg.id) : fmtTime(s.first_ms),
      " · last ", lastSeg ? jumpButton(s.last_ms, lastSeg.id) : fmtTime(s.last_ms))
      : el("p", { class: "rv-card-line rv-muted" }, "No standing tags."),
    el("p", { class: "rv-card-line rv-muted" },
      `✓ ${s.confirmed} by a person · ✗ ${s.rejected} rejected`, sources ? ` · ${sources}` : ""),
    el("ol", { class: "rv-quotes" }, s.quotes.map((q) => el("li", {},
      el("button", { type: "button", class: "rv-quote", dataset: { segmentId: q.segment_id || "" },
        onclick: () => q.segment_id && jumpTo(q.segment_id) },
      el("span", { class: "rv-quote-meta" }, `${fmtTime(q.start_ms)} · ${q.speaker || "?"} · ${q.support > 1 ? q.support + " raters" : sourceName(q.source_group) + ", " + q.status}`),
      el("span", { class: "rv-quote-text" }, `“${q.text}”`))))));
    box.append(card);
  }
  const notes = $("notes");
  notes.replaceChildren();
  if (!data.notes.length) notes.append(el("li", { class: "rv-muted" }, "No notes."));
  for (const n of data.notes) {
    const seg = n.at_ms !== null && n.at_ms !== undefined ? segmentAt(n.at_ms) : null;
    notes.append(el("li", {},
      seg ? jumpButton(n.at_ms, seg.id) : el("span", { class: "rv-muted" }, "—"), " ",
      el("span", {}, n.text), n.by ? el("span", { class: "rv-note-by" }, ` — ${actorName(n.by)}`) : ""));
  }
}

function toggle(container, label, value, set, extra = {}) {
  const input = el("input", { type: "checkbox", checked: true, value, onchange: (e) => {
    if (e.target.checked) set.add(value); else set.delete(value);
    applyFilters();
  } });
  set.add(value);
  container.append(el("label", { class: "rv-check", style: extra.style, dataset: extra.dataset }, input,
    extra.code ? el("span", { class: "chip-code" }, extra.code) : "", label));
}

function renderFilters() {
  const tf = $("tag-filters");
  for (const t of rubric.tags) {
    toggle(tf, t.label, t.id, state.tags, { code: t.code, style: { "--c": t.colour, "--ink": t.ink },
      dataset: { filterTag: t.id } });
  }
  const sf = $("source-filters");
  for (const g of data.sources) toggle(sf, sourceName(g), g, state.sources, { dataset: { filterSource: g } });
  $("search").addEventListener("input", (e) => { state.q = e.target.value; applyFilters(); });
  $("only-tagged").addEventListener("change", (e) => { state.onlyTagged = e.target.checked; applyFilters(); });
  $("show-rejected").addEventListener("change", (e) => { state.showRejected = e.target.checked; applyFilters(); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && !isTypingTarget(e.target)) { e.preventDefault(); $("search").focus(); }
  });
}

function renderHeader() {
  const title = data.title || data.id;
  document.title = `${title} · review`;
  $("title").textContent = title;
  const started = data.started_at ? new Date(data.started_at * 1000).toLocaleString() : "";
  const standing = data.tags.filter(isStanding).length;
  $("meta").textContent = [started, `${fmtTime(data.duration_ms)} long`, `${data.segments.length} turns`,
    `${standing} tags`, `rubric ${rubric.tags.length ? data.rubric.title || data.rubric_name : data.rubric_name}`,
    data.status === "live" ? "still live" : ""].filter(Boolean).join(" · ");
  const q = (extra) => `?session=${encodeURIComponent(params.session)}&token=${encodeURIComponent(params.token)}${extra || ""}`;
  for (const fmt of ["md", "json", "vtt", "srt"]) {
    $(`export-${fmt}`).href = `/api/sessions/${encodeURIComponent(params.session)}/export?format=${fmt}&token=${encodeURIComponent(params.token)}`;
  }
  $("to-calibrate").href = `calibrate.html${q()}`;
  if (data.has_audio) {
    $("audio").src = `/api/sessions/${encodeURIComponent(params.session)}/audio?token=${encodeURIComponent(params.token)}`;
    $("player").hidden = false;
  }
}

async function main() {
  if (!params.session || !params.token) {
    $("title").textContent = "No session";
    toast("Open this page from the copilot: the URL needs ?session=…&token=…");
    return;
  }
  try {
    data = await apiGet(`/api/sessions/${encodeURIComponent(params.session)}/review`, params.token);
  } catch (err) {
    $("title").textContent = "Could not load the session";
    toast(err.status === 401 ? "The access token was refused (401)." : err.message);
    return;
  }
  // The review reads units (turns), not the fragments cut for latency.
  data.fragments = data.segments;
  data.segments = data.units || data.segments;
  data.segIndex = new Map(data.segments.map((s) => [s.id, s]));
  data.unitOf = new Map();
  for (const u of data.segments) {
    data.unitOf.set(u.id, u.id);
    for (const sid of u.segment_ids || []) data.unitOf.set(sid, u.id);
  }
  rubric = rubricView(data.rubric);
  renderHeader();
  renderFilters();
  render();
  renderSummary();
  document.body.dataset.ready = "true";
}

main();
