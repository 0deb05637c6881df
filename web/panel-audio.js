// The panel's audio health: a level meter per channel and a banner when a channel is silent or
// a browser share stopped. Fed by status events (live `lag` readings carry `levels_db`; stored
// warnings carry `details.kind`), so it works for device capture and browser capture alike.
const SHOW = new Set(["silent_channel", "share_ended", "no_audio", "pace_slow"]);
const CLEAR = new Set(["channel_ok", "share_live", "pace_ok"]);
const problems = new Map(); // channel -> message

export function applyAudioStatus(d, speakers = []) {
  const details = d.details || {};
  if (Array.isArray(details.levels_db)) showLevels(details.levels_db, speakers);
  const ch = details.channel;
  if (SHOW.has(details.kind)) problems.set(ch, d.message || "check the audio input");
  else if (CLEAR.has(details.kind)) problems.delete(ch);
  else return;
  const banner = document.getElementById("audio-banner");
  if (!banner) return;
  banner.hidden = problems.size === 0;
  banner.textContent = [...problems.values()].join(" · ");
}

export function showLevels(levels, speakers) {
  const box = document.getElementById("levels");
  if (!box) return;
  box.hidden = false;
  levels.forEach((db, i) => {
    let meter = document.getElementById(`level-${i}`);
    if (!meter) {
      const label = document.createElement("span");
      label.className = "level";
      label.textContent = speakers[i] || `ch ${i}`;
      meter = document.createElement("meter");
      Object.assign(meter, { id: `level-${i}`, min: -80, max: 0, low: -60, high: -6 });
      label.append(" ", meter);
      box.append(label);
    }
    meter.value = Math.max(-80, db);
    meter.title = `${(speakers[i] || `channel ${i}`)}: ${db.toFixed(0)} dBFS`;
  });
}
