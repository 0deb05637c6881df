// Calibration page: agreement matrix (kappa / alpha / % with colour AND text), rater x tag counts,
// timelines per rater, a side-by-side grid over the transcript, and disagreements one click from their text.
// Reads GET /api/sessions/{id}/calibration?raters=...
import { actorName, apiGet, el, fmtTime, rubricView, tagInfo, speakerKind, pageParams, showToast } from "./common.js";

const $ = (id) => document.getElementById(id);
const params = pageParams();
const query = new URLSearchParams(window.location.search);
let rubric = null;

// Landis & Koch (1977) bands: the words travel with the colour so colour is never the only cue.
const BANDS = [
  { max: 0, name: "poor", cls: "b0" },
  { max: 0.2, name: "slight", cls: "b1" },
  { max: 0.4, name: "fair", cls: "b2" },
  { max: 0.6, name: "moderate", cls: "b3" },
  { max: 0.8, name: "substantial", cls: "b4" },
  { max: Infinity, name: "almost perfect", cls: "b5" },
];
const band = (v) => BANDS.find((b) => v <= b.max) || BANDS[BANDS.length - 1];
const fmt2 = (v) => (Math.round(v * 100) / 100).toFixed(2);
const pct = (v) => `${Math.round(v * 100)}%`;

export function raterName(r) {
  if (r === "copilot:rules") return "rules";
  if (r === "copilot:llm") return "LLM";
  return actorName(r);
}

function toast(message, level = "error") {
  showToast(message, level, 0);
}

function statCell(stat, attrs, extra) {
  if (!stat || stat.value === null || stat.value === undefined) {
    return el("td", { ...attrs, class: "cb-cell cb-na", title: stat ? stat.reason : "" },
      el("span", { class: "cb-value" }, "n/a"),
      el("span", { class: "cb-band" }, stat && stat.reason ? shortReason(stat.reason) : "undefined"));
  }
  const b = band(stat.value);
  return el("td", { ...attrs, class: `cb-cell ${b.cls}`, title: `n = ${stat.n} units` },
    el("span", { class: "cb-value" }, fmt2(stat.value)),
    el("span", { class: "cb-band" }, b.name),
    extra ? el("span", { class: "cb-extra" }, extra) : "");
}

function shortReason(reason) {
  if (reason.includes("no variation")) return "no variation";
  if (reason.includes("two raters") || reason.includes("both")) return "too few ratings";
  return "undefined";
}

function pctCell(stat, attrs) {
  if (!stat || stat.value === null) return el("td", { ...attrs, class: "cb-cell cb-na" }, "n/a");
  return el("td", { ...attrs, class: "cb-cell cb-pct", style: { "--p": `${Math.round(stat.value * 100)}%` } },
    el("span", { class: "cb-value" }, pct(stat.value)), el("span", { class: "cb-band" }, `of ${stat.n} units`));
}

function tagHead(t) {
  if (t.tag === "*") return el("th", { scope: "col", class: "cb-overall" }, "All tags", el("small", {}, "unit × tag"));
  const info = tagInfo(rubric, t.tag);
  return el("th", { scope: "col", style: { "--c": info.colour, "--ink": info.ink } },
    el("span", { class: "chip-code" }, info.code), " ", info.label);
}

function renderMatrix(cal) {
  const cols = [...cal.tags, cal.overall];
  const table = $("matrix");
  table.replaceChildren();
  table.append(el("thead", {}, el("tr", {}, el("th", { scope: "col" }, ""), cols.map(tagHead))));
  const body = el("tbody");
  body.append(el("tr", { class: "cb-row-alpha" },
    el("th", { scope: "row" }, "Krippendorff's α", el("small", {}, "all raters")),
    cols.map((t) => statCell(t.alpha, { dataset: { alphaTag: t.tag } }))));
  body.append(el("tr", {},
    el("th", { scope: "row" }, "% agreement", el("small", {}, "all raters agree")),
    cols.map((t) => pctCell(t.agreement, { dataset: { pctTag: t.tag } }))));
  cal.overall.pairs.forEach((p, k) => {
    body.append(el("tr", {},
      el("th", { scope: "row" }, `κ ${raterName(p.a)} ~ ${raterName(p.b)}`, el("small", {}, "Cohen's kappa")),
      cols.map((t) => {
        const pair = t.pairs[k];
        const attrs = { dataset: { pair: `${p.a}|${p.b}`, tag: t.tag,
          kappa: pair.kappa.value === null ? "" : fmt2(pair.kappa.value) } };
        return statCell(pair.kappa, attrs, pair.agreement.value === null ? "" : `${pct(pair.agreement.value)} agree`);
      })));
  });
  table.append(body);

  $("legend").replaceChildren(el("span", { class: "cb-legend-title" }, "κ / α:"),
    ...BANDS.map((b, i) => el("span", { class: `cb-legend-item ${b.cls}` },
      `${b.name} ${i === 0 ? "< 0" : i === BANDS.length - 1 ? "> 0.80" : `≤ ${b.max.toFixed(2)}`}`)),
    el("span", { class: "cb-legend-item cb-na" }, "n/a undefined"));
  const reasons = new Map();
  for (const t of cols) {
    if (t.alpha.reason) reasons.set(`${t.label}, α: ${t.alpha.reason}`, 1);
    for (const p of t.pairs) if (p.kappa.reason) reasons.set(`${t.label}, κ ${raterName(p.a)} ~ ${raterName(p.b)}: ${p.kappa.reason}`, 1);
  }
  $("reasons").replaceChildren(...[...reasons.keys()].map((r) => el("li", {}, r)));
}

function renderRaterMatrix(cal) {
  const table = $("rater-matrix");
  table.replaceChildren();
  const cols = [...cal.tags, cal.overall];
  table.append(el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Rater"), cols.map(tagHead))));
  const body = el("tbody");
  for (const r of cal.raters) {
    body.append(el("tr", {}, el("th", { scope: "row" }, raterName(r)), cols.map((t) => {
      const ks = t.pairs.filter((p) => (p.a === r || p.b === r) && p.kappa.value !== null).map((p) => p.kappa.value);
      const mean = ks.length ? ks.reduce((a, b) => a + b, 0) / ks.length : null;
      const stat = { value: mean, n: t.marked[r], reason: ks.length ? null : "no defined kappa with another rater" };
      return statCell(stat, { dataset: { raterTag: `${r}|${t.tag}` } }, `${t.marked[r]} marked`);
    })));
  }
  table.append(body);
}

function chip(tagId, title) {
  const info = tagInfo(rubric, tagId);
  return el("span", { class: "chip chip--confirmed cb-chip", title: title || info.label,
    style: { "--c": info.colour, "--ink": info.ink }, dataset: { tag: tagId } },
  el("span", { class: "chip-code", "aria-hidden": "true" }, info.code), el("span", { class: "chip-label" }, info.label));
}

function jumpTo(segId) {
  const row = document.querySelector(`#grid tr[data-segment-id="${CSS.escape(segId)}"]`);
  if (!row) return;
  if (row.hidden) { $("only-disagreements").checked = false; applyGridFilter(); }
  for (const r of document.querySelectorAll("#grid tr.is-target")) r.classList.remove("is-target");
  row.classList.add("is-target");
  row.scrollIntoView({ block: "center", behavior: "instant" });
}

function renderLanes(cal) {
  const dur = Math.max(cal.duration_ms, 1);
  const box = $("lanes");
  box.replaceChildren();
  const segById = new Map(cal.segments.map((s) => [s.id, s]));
  const ticks = [];
  const step = dur > 20 * 60000 ? 300000 : dur > 5 * 60000 ? 60000 : 10000;
  for (let t = 0; t <= dur; t += step) ticks.push(t);
  box.append(el("div", { class: "cb-lane cb-axis" }, el("span", { class: "cb-lane-name" }, ""),
    el("div", { class: "cb-track" }, ticks.map((t) => el("span", { class: "cb-tick", style: { left: `${(t / dur) * 100}%` } }, fmtTime(t))))));
  for (const r of cal.raters) {
    const marks = [];
    for (const c of cal.timelines[r] || []) {
      const segs = c.segment_ids.map((id) => segById.get(id)).filter(Boolean);
      const spans = segs.length ? segs.map((s) => [s.start_ms, s.end_ms, s.id]) : [[c.start_ms, Math.max(c.end_ms, c.start_ms + 500), null]];
      for (const [a, b, sid] of spans) {
        const info = tagInfo(rubric, c.tag);
        marks.push(el("button", { type: "button", class: "cb-mark", title: `${info.label} ${fmtTime(a)}${c.evidence ? ` “${c.evidence}”` : ""}`,
          style: { left: `${(a / dur) * 100}%`, width: `${Math.max(((b - a) / dur) * 100, 0.6)}%`, "--c": info.colour, "--ink": info.ink },
          dataset: { tag: c.tag }, onclick: () => sid && jumpTo(sid) }, info.code));
      }
    }
    box.append(el("div", { class: "cb-lane", dataset: { rater: r } },
      el("span", { class: "cb-lane-name" }, raterName(r)), el("div", { class: "cb-track" }, marks)));
  }
}

function renderGrid(cal) {
  const table = $("grid");
  table.replaceChildren();
  table.append(el("thead", {}, el("tr", {},
    el("th", { scope: "col", class: "cb-time" }, "Time"),
    el("th", { scope: "col" }, "Transcript"),
    cal.raters.map((r) => el("th", { scope: "col", class: "cb-rater-col", dataset: { rater: r } }, raterName(r))))));
  const marks = new Map(); // segId -> rater -> [tag ids]
  for (const r of cal.raters) {
    for (const c of cal.timelines[r] || []) {
      for (const sid of c.segment_ids) {
        if (!marks.has(sid)) marks.set(sid, new Map());
        const m = marks.get(sid);
        if (!m.has(r)) m.set(r, new Set());
        m.get(r).add(c.tag);
      }
    }
  }
  const disSegs = new Map();
  for (const d of cal.disagreements) disSegs.set(d.segment_id, (disSegs.get(d.segment_id) || 0) + 1);
  const body = el("tbody");
  for (const s of cal.segments) {
    const m = marks.get(s.id) || new Map();
    body.append(el("tr", { dataset: { segmentId: s.id, speaker: speakerKind(s.speaker) },
      class: disSegs.has(s.id) ? "is-disagreement" : "" },
    el("td", { class: "cb-time" }, fmtTime(s.start_ms),
      disSegs.has(s.id) ? el("span", { class: "cb-flag", title: "raters disagree here" }, "≠") : ""),
    el("td", { class: "cb-text" }, el("span", { class: "cb-speaker" }, s.speaker), s.text),
    cal.raters.map((r) => el("td", { class: "cb-rater-cell", dataset: { rater: r } },
      [...(m.get(r) || [])].map((t) => chip(t))))));
  }
  table.append(body);
}

function applyGridFilter() {
  const only = $("only-disagreements").checked;
  for (const tr of document.querySelectorAll("#grid tbody tr")) tr.hidden = only && !tr.classList.contains("is-disagreement");
}

function renderDisagreements(cal) {
  const list = $("disagreements");
  list.replaceChildren();
  $("dis-count").textContent = String(cal.disagreements.length);
  if (!cal.disagreements.length) list.append(el("li", { class: "cb-muted" }, "None: every rater agrees on every segment."));
  for (const d of cal.disagreements) {
    list.append(el("li", {}, el("button", { type: "button", class: "cb-disagreement", dataset: { segmentId: d.segment_id, tag: d.tag },
      onclick: () => jumpTo(d.segment_id) },
    el("span", { class: "cb-dis-head" }, el("span", { class: "cb-dis-time" }, fmtTime(d.start_ms)), chip(d.tag)),
    el("span", { class: "cb-dis-who" },
      el("span", { class: "cb-yes" }, `✓ ${d.marked_by.map(raterName).join(", ")}`),
      el("span", { class: "cb-no" }, `✗ ${d.not_marked_by.map(raterName).join(", ")}`)),
    el("span", { class: "cb-dis-text" }, el("b", {}, `${d.speaker}: `), `“${d.text}”`))));
  }
}

function renderPicker(all, chosen) {
  const box = $("rater-picker");
  box.replaceChildren();
  for (const r of all) {
    const input = el("input", { type: "checkbox", value: r, checked: chosen.includes(r), onchange: () => {
      const picked = [...box.querySelectorAll("input:checked")].map((i) => i.value);
      const q = new URLSearchParams(window.location.search);
      if (picked.length === all.length) q.delete("raters"); else q.set("raters", picked.join(","));
      window.location.search = q.toString();
    } });
    box.append(el("label", { class: "cb-pick", dataset: { rater: r } }, input, raterName(r),
      el("small", {}, r.startsWith("copilot:") ? "copilot" : "person")));
  }
}

async function main() {
  if (!params.session || !params.token) {
    $("title").textContent = "No session";
    toast("Open this page from the copilot: the URL needs ?session=…&token=…");
    return;
  }
  const base = `/api/sessions/${encodeURIComponent(params.session)}/calibration`;
  const raters = query.get("raters") || "";
  let cal;
  let all;
  try {
    cal = await apiGet(raters ? `${base}?raters=${encodeURIComponent(raters)}` : base, params.token);
    all = raters ? (await apiGet(base, params.token)).raters : cal.raters;
  } catch (err) {
    $("title").textContent = "Could not load the session";
    toast(err.status === 401 ? "The access token was refused (401)." : err.message);
    return;
  }
  rubric = rubricView(cal.rubric);
  const title = cal.title || cal.session_id;
  document.title = `${title} · calibration`;
  $("title").textContent = title;
  $("meta").textContent = `${cal.units} turns · ${cal.raters.length} raters · ${cal.disagreements.length} disagreements`;
  $("to-review").href = `review.html?session=${encodeURIComponent(params.session)}&token=${encodeURIComponent(params.token)}`;
  renderPicker([...new Set([...all, ...cal.raters])], cal.raters);
  if (cal.raters.length < 2) toast("Agreement needs at least two raters: import another rater's tags (copilot tags import).", "warning");
  renderMatrix(cal);
  renderRaterMatrix(cal);
  renderLanes(cal);
  renderGrid(cal);
  renderDisagreements(cal);
  $("only-disagreements").addEventListener("change", applyGridFilter);
  document.body.dataset.ready = "true";
}

main();
