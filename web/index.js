// The sessions list for `copilot serve`: one row per stored session, links to its pages, and
// "New interview (browser capture)", which asks the server for a live session (POST
// /api/live/browser) and goes to its capture page (consent, microphone, the call's tab).
import { apiGet, el, pageParams } from "./common.js";

const { token } = pageParams();
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000; // a running capture's row follows it to "ended"

function link(page, id, label, cls = "btn btn-ghost") {
  const q = new URLSearchParams({ session: id, token });
  return el("a", { class: cls, href: `${page}?${q}` }, label);
}

function started(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "";
}

async function apiPost(path, body) {
  const res = await fetch(path, { method: "POST", headers: { Authorization: `Bearer ${token}`,
    "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
  let data = null;
  try { data = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) {
    const err = new Error((data && data.detail) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function showError(text) {
  $("new-error").textContent = text;
  $("new-error").hidden = !text;
}

function row(s, capture) {
  const capturing = capture && capture.session_id === s.id;
  const live = s.status === "live";
  const pill = capturing
    ? el("span", { class: "pill pill-live pill-capturing" }, capture.connected ? "● live: capturing" : "● live: not capturing yet")
    : el("span", { class: `pill ${live ? "pill-live" : ""}` }, live ? "● live" : "ended");
  return el("tr", { dataset: capturing ? { session: s.id, capturing: "1" } : { session: s.id } },
    el("td", {}, started(s.started_at)),
    el("td", {}, s.title || s.id),
    el("td", {}, s.mode || ""),
    el("td", {}, pill),
    el("td", { class: "actions" },
      capturing ? el("a", { class: "btn btn-primary capture-link", href: capture.capture_url }, "Capture page") : null,
      capturing ? el("button", { type: "button", class: "btn stop-capture", onclick: stopCapture }, "Stop") : null,
      live ? link("panel.html", s.id, "Panel") : null,
      link("review.html", s.id, "Review"),
      link("calibrate.html", s.id, "Calibrate")),
  );
}

async function render() {
  const body = document.querySelector("#sessions tbody");
  let sessions;
  let live;
  try {
    [sessions, live] = await Promise.all([apiGet(`/api/sessions`, token), apiGet(`/api/live`, token)]);
  } catch (err) {
    const toast = $("toast");
    toast.textContent = err.status === 401 ? "Access denied: open the URL that `copilot serve` printed (it carries the token)." : String(err.message);
    toast.hidden = false;
    return false;
  }
  $("new-capture").hidden = !live.can_start;
  $("new-browser").disabled = Boolean(live.browser) || $("new-browser").dataset.busy === "1";
  $("new-status").textContent = live.browser ? "One capture at a time: stop the running one to start another." : "";
  $("empty").hidden = sessions.length > 0;
  body.replaceChildren(...sessions.map((s) => row(s, live.browser)));
  return true;
}

async function startCapture(event) {
  event.preventDefault();
  const button = $("new-browser");
  button.disabled = true;
  button.dataset.busy = "1";
  showError("");
  $("new-status").textContent = "Starting: loading the speech model…";
  try {
    const started = await apiPost(`/api/live/browser`, { title: $("new-title").value.trim() || null });
    window.location.assign(started.capture_url); // the start page: consent, microphone, the call's tab
  } catch (err) {
    showError(`Could not start a capture: ${err.message}`);
    $("new-status").textContent = "";
    button.dataset.busy = "";
    await render();
  }
}

async function stopCapture(event) {
  event.target.disabled = true;
  try {
    await apiPost(`/api/live/stop`, {});
  } catch (err) {
    if (err.status !== 404) showError(`Could not stop the capture: ${err.message}`);
  }
  await render();
}

async function main() {
  $("new-capture").addEventListener("submit", startCapture);
  if (await render()) setInterval(render, REFRESH_MS);
}

main();
