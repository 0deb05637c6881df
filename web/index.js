// The sessions list for `copilot serve`: one row per stored session, links to its pages.
import { apiGet, el, pageParams } from "./common.js";

const { token } = pageParams();

function link(page, id, label) {
  const q = new URLSearchParams({ session: id, token });
  return el("a", { class: "btn btn-ghost", href: `${page}?${q}` }, label);
}

function started(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "";
}

async function main() {
  const body = document.querySelector("#sessions tbody");
  let sessions;
  try {
    sessions = await apiGet(`/api/sessions`, token);
  } catch (err) {
    const toast = document.getElementById("toast");
    toast.textContent = err.status === 401 ? "Access denied: open the URL that `copilot serve` printed (it carries the token)." : String(err.message);
    toast.hidden = false;
    return;
  }
  document.getElementById("empty").hidden = sessions.length > 0;
  for (const s of sessions) {
    const live = s.status === "live";
    body.append(el("tr", { dataset: { session: s.id } },
      el("td", {}, started(s.started_at)),
      el("td", {}, s.title || s.id),
      el("td", {}, s.mode || ""),
      el("td", {}, el("span", { class: `pill ${live ? "pill-live" : ""}` }, live ? "● live" : "ended")),
      el("td", { class: "actions" },
        live ? link("panel.html", s.id, "Panel") : null,
        link("review.html", s.id, "Review"),
        link("calibrate.html", s.id, "Calibrate")),
    ));
  }
}

main();
