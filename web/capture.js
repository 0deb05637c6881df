// The capture page: consent, then the interviewer's microphone (channel 0) and the call's tab
// audio (channel 1) -> AudioWorklet (16 kHz PCM16, one clock) -> binary websocket frames.
//
// Nothing leaves the page before the server's `ready` message, which it sends only after the
// token, Origin/Host and consent checks. Frames wait in a bounded queue (about 30 s) while the
// socket is down and are sent on resume; beyond that the oldest are dropped and the server
// records the hole as a gap.
//
// Test hook (documented in docs/capture.md): if `window.copilotCaptureTestHooks.callStream` is
// a function, it is called instead of `navigator.mediaDevices.getDisplayMedia` and must return
// a Promise of a MediaStream (tests pass an <audio> element's captureStream()). `?rate=44100`
// or `?rate=48000` fixes the AudioContext's rate; `?aec=0`, `?ns=1`, `?agc=1` change the
// microphone's processing (diagnostics; the defaults are the product's choice).

const params = new URLSearchParams(window.location.search);
const sessionId = params.get("session") || "";
const token = params.get("token") || "";
const forcedRate = Number(params.get("rate")) || undefined;
// `?latency=playback` trades latency for larger render buffers (a diagnostic knob: on a starved
// 2-core machine neither hint stopped Chromium dropping captured input; docs/capture.md).
const LATENCY_HINT = params.get("latency") || "interactive";

const FRAME_VERSION = 1;
const HEADER_BYTES = 12; // u8 version, u8 channel, u16 reserved, u64 first-sample index (LE)
const MAX_QUEUE = 600; // frames of 100 ms, both channels: ~30 s
const MAX_BUFFERED = 1 << 20; // bytes the socket may hold before we keep frames in our queue
const FATAL = { 4401: "This link's access token is wrong or missing: open the capture link that `copilot live --browser` printed, or start from the sessions page.",
  4403: "This page's origin is not allowed to capture for this copilot.",
  4404: "This session is not capturing from a browser (it ended, or was started without browser capture).",
  4409: "Another tab is already capturing this session. Close it first.",
  4412: "Confirm the candidate's consent first." };

const $ = (id) => document.getElementById(id);
const stats = { sentFrames: 0, sentBytes: 0, droppedFrames: 0, reconnects: 0, framesByChannel: [0, 0] };
const state = {
  info: null, ctx: null, ws: null, ready: false, offset: null, queue: [], stopped: false, started: false,
  inputs: [null, null], // per channel: {stream, track, source, node}
  levels: [-80, -80], retryMs: 500, stats, clockLog: [],
};
window.copilotCapture = state;

function showError(text) {
  const node = $("error");
  node.textContent = text;
  node.hidden = false;
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}`,
    "Content-Type": "application/json" } });
  if (!res.ok) {
    const err = new Error(`${res.status}`);
    err.status = res.status;
    throw err;
  }
  return res.json();
}

// -- the socket ---------------------------------------------------------------------------
function connect() {
  return new Promise((resolve, reject) => {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${window.location.host}/ws/capture/${encodeURIComponent(sessionId)}?token=${encodeURIComponent(token)}`);
    ws.binaryType = "arraybuffer";
    state.ws = ws;
    let settled = false;
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      const msg = JSON.parse(e.data);
      if (msg.type === "ready") {
        state.ready = true;
        state.retryMs = 500;
        if (state.offset === null) state.offset = Math.max(0, ...msg.next_index);
        $("conn").textContent = "connected: capturing";
        settled = true;
        resolve(msg);
        flush();
      } else if (msg.type === "error") {
        console.warn("capture server:", msg.message);
      }
    };
    ws.onclose = (e) => {
      state.ready = false;
      if (FATAL[e.code]) {
        showError(FATAL[e.code]);
        stopInputs();
        state.stopped = true;
        if (!settled) { settled = true; reject(new Error(FATAL[e.code])); }
        return;
      }
      if (state.stopped) return;
      $("conn").textContent = "connection lost: reconnecting (audio is kept meanwhile)…";
      if (!settled) { settled = true; reject(new Error("connection failed")); }
      setTimeout(() => { stats.reconnects += 1; connect().catch(() => {}); }, state.retryMs);
      state.retryMs = Math.min(5000, state.retryMs * 2);
    };
  });
}

function enqueue(msg) {
  if (state.queue.length >= MAX_QUEUE) {
    state.queue.shift(); // the server sees the hole and records it as a gap
    stats.droppedFrames += 1;
  }
  state.queue.push(msg);
  flush();
}

function flush() {
  const ws = state.ws;
  while (state.ready && ws && ws.readyState === WebSocket.OPEN && state.queue.length) {
    if (ws.bufferedAmount > MAX_BUFFERED) { setTimeout(flush, 50); return; }
    const { channel, index, pcm } = state.queue.shift();
    const buf = new ArrayBuffer(HEADER_BYTES + pcm.byteLength);
    const view = new DataView(buf);
    view.setUint8(0, FRAME_VERSION);
    view.setUint8(1, channel);
    view.setUint16(2, 0, true);
    view.setBigUint64(4, BigInt(index + state.offset), true);
    new Int16Array(buf, HEADER_BYTES).set(pcm);
    ws.send(buf);
    stats.sentFrames += 1;
    stats.sentBytes += buf.byteLength;
    stats.framesByChannel[channel] += 1;
  }
}

function control(msg) {
  if (state.ready && state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

// -- the inputs ----------------------------------------------------------------------------
function attach(channel, stream) {
  detach(channel);
  const track = stream.getAudioTracks()[0];
  const source = state.ctx.createMediaStreamSource(new MediaStream([track]));
  const node = new AudioWorkletNode(state.ctx, "pcm16-downsampler",
    { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1], processorOptions: { channel, blockSamples: 1600 } });
  node.port.onmessage = (e) => {
    const { index, pcm, rms } = e.data;
    noteClock(index + pcm.length);
    state.levels[channel] = rms > 0 ? Math.max(-80, 20 * Math.log10(rms)) : -80;
    $(`meter-${channel}`).value = state.levels[channel];
    enqueue({ channel, index, pcm });
  };
  source.connect(node);
  node.connect(state.sink); // a silent sink keeps the node pulled by the renderer
  track.addEventListener("ended", () => onTrackEnded(channel, track));
  state.inputs[channel] = { stream, track, source, node };
}

// The wall time of session sample 0, from when blocks reach this thread (delays only add, so
// the earliest estimate is the best). Sent to the server so latency can be measured from the
// moment the browser captured the audio (`copilot bench browser`).
function noteClock(endIndex) {
  const now = Date.now() / 1000;
  const t0 = now - endIndex / 16000;
  if (state.clockT0 === undefined || t0 < state.clockT0) state.clockT0 = t0;
  // When each block reached this page: a starved audio thread renders slower than real time, so
  // a benchmark maps session samples to wall time with this, not with one origin. Bounded.
  if (state.clockLog.length >= 40000) state.clockLog.splice(0, 20000);
  state.clockLog.push([endIndex, now]);
  checkPace(endIndex, now);
}

// A starved browser renders audio slower than real time and drops captured input before the
// worklet sees it; nothing else would tell. Compare samples placed with wall time over 10 s.
function checkPace(endIndex, now) {
  const w = state.pace || (state.pace = { index: endIndex, wall: now, slow: false });
  if (now - w.wall < 10) return;
  const ratio = (endIndex - w.index) / 16000 / (now - w.wall);
  if (ratio < 0.97 && !w.slow) control({ type: "pace", state: "slow", ratio });
  if (ratio >= 0.99 && w.slow) control({ type: "pace", state: "ok", ratio });
  state.pace = { index: endIndex, wall: now, slow: ratio < 0.97 || (w.slow && ratio < 0.99) };
}

function sendClock() {
  if (state.clockT0 !== undefined && state.offset !== null) {
    control({ type: "clock", audio_t0: state.clockT0 - state.offset / 16000 });
  }
}

function detach(channel) {
  const input = state.inputs[channel];
  if (!input) return;
  input.node.port.postMessage("stop");
  input.source.disconnect();
  input.node.disconnect();
  state.inputs[channel] = null;
}

function onTrackEnded(channel, track) {
  const input = state.inputs[channel];
  if (!input || input.track !== track || state.stopped) return;
  detach(channel);
  control({ type: "track", channel, state: "ended" });
  prompt(channel, channel === 1
    ? "The call's share stopped. The session goes on with your microphone only until you share the call again."
    : "Your microphone stopped. Pick a microphone and press the button to capture it again.");
}

function prompt(channel, text) {
  $("reshare").hidden = false;
  $("reshare").dataset.channel = String(channel);
  $("reshare-text").textContent = text;
  $("reshare-btn").textContent = channel === 1 ? "Share the call again" : "Capture the microphone again";
}

async function openMic() {
  const deviceId = $("mic").value;
  const stream = await navigator.mediaDevices.getUserMedia({
    // Echo cancellation keeps the call's voice (from speakers) out of the mic. Noise suppression
    // and AGC stay off: Whisper is trained on unprocessed speech, and with them on Chrome clipped
    // a test voice at full scale and the streaming ASR lost words (docs/capture.md).
    audio: { deviceId: deviceId ? { exact: deviceId } : undefined, echoCancellation: params.get("aec") !== "0",
      noiseSuppression: params.get("ns") === "1", autoGainControl: params.get("agc") === "1", channelCount: 1 } });
  attach(0, stream);
  listMics(); // labels are visible once permission is granted
  return stream;
}

async function pickCall() {
  const hooks = window.copilotCaptureTestHooks;
  if (hooks && typeof hooks.callStream === "function") return hooks.callStream();
  return navigator.mediaDevices.getDisplayMedia({
    video: true, // browsers require video to offer tab audio; the video track is stopped at once
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, suppressLocalAudioPlayback: false },
    systemAudio: "include", selfBrowserSurface: "exclude", surfaceSwitching: "include", preferCurrentTab: false,
  });
}

async function shareCall(stream) {
  state.lastShare = stream;
  stream.getVideoTracks().forEach((t) => t.stop()); // only the audio is wanted
  if (stream.getAudioTracks().length === 0) {
    control({ type: "track", channel: 1, state: "no_audio" });
    prompt(1, "The shared source has no audio. Share the call's browser tab with 'Share tab audio' on "
      + "(a window has no audio); on Windows or ChromeOS, the entire screen with system audio also works.");
    return false;
  }
  attach(1, stream);
  $("reshare").hidden = true;
  return true;
}

async function listMics() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const select = $("mic");
  const current = select.value || (state.inputs[0] && state.inputs[0].track.getSettings().deviceId) || "";
  const mics = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  select.replaceChildren(new Option("Default microphone", ""));
  mics.forEach((d, i) => { if (d.deviceId && d.deviceId !== "default") select.add(new Option(d.label || `Microphone ${i + 1}`, d.deviceId)); });
  select.value = [...select.options].some((o) => o.value === current) ? current : "";
}

function stopInputs() {
  for (const ch of [0, 1]) {
    const input = state.inputs[ch];
    if (input) { input.track.stop(); detach(ch); }
  }
}

// -- the flow ------------------------------------------------------------------------------
async function start() {
  $("start").disabled = true;
  let call = null;
  try {
    await api(`/api/sessions/${encodeURIComponent(sessionId)}/consent`,
      { method: "POST", body: JSON.stringify({ by: $("by").value || "interviewer", agreed: true }) });
    // The share picker first: it needs the click's user activation, which later awaits may outlive.
    let callError = null;
    try { call = await pickCall(); } catch (err) { callError = err; }
    state.ctx = new AudioContext(forcedRate ? { sampleRate: forcedRate, latencyHint: LATENCY_HINT } : { latencyHint: LATENCY_HINT });
    await state.ctx.audioWorklet.addModule("capture-worklet.js");
    state.sink = state.ctx.createGain();
    state.sink.gain.value = 0;
    state.sink.connect(state.ctx.destination);
    await openMic();
    if (call) await shareCall(call);
    else prompt(1, `No call shared yet (${callError ? callError.message : "cancelled"}). Share the call's tab to capture the candidate.`);
    $("consent-step").hidden = true;
    $("source-step").hidden = true;
    $("live-step").hidden = false;
    state.started = true;
    await connect();
    control({ type: "hello", audio_rate: state.ctx.sampleRate,
      tracks: { 0: state.inputs[0] ? state.inputs[0].track.label : "", 1: state.inputs[1] ? state.inputs[1].track.label : "" } });
    setTimeout(sendClock, 3000);
  } catch (err) {
    if (err.status === 401) showError(FATAL[4401]);
    else if (!$("error").hidden) { /* already explained */ } else showError(`Could not start capture: ${err.message || err}`);
    stopInputs();
    if (call) call.getTracks().forEach((t) => t.stop()); // no share left running after a failed start
    $("start").disabled = false;
  }
}

async function stopSession() {
  $("stop").disabled = true;
  for (const ch of [0, 1]) if (state.inputs[ch]) state.inputs[ch].node.port.postMessage("flush");
  await new Promise((r) => setTimeout(r, 100));
  flush();
  sendClock();
  control({ type: "stop" });
  state.stopped = true;
  stopInputs();
  if (state.ctx) await state.ctx.close();
  $("conn").textContent = "stopped: the session is finishing its transcript";
}

async function main() {
  $("panel-link").href = `panel.html?session=${encodeURIComponent(sessionId)}&token=${encodeURIComponent(token)}`;
  $("sessions-link").href = `index.html?token=${encodeURIComponent(token)}`;
  try {
    state.info = await api(`/api/sessions/${encodeURIComponent(sessionId)}/capture`);
  } catch (err) {
    showError(err.status === 401 ? FATAL[4401] : err.status === 404 ? FATAL[4404] : `Cannot reach the copilot: ${err.message}`);
    return;
  }
  $("notice").textContent = state.info.notice;
  $("label-0").textContent = `${state.info.speakers[0]} (microphone)`;
  $("label-1").textContent = `${state.info.speakers[1]} (call)`;
  if (state.info.consent) {
    $("consent").checked = true;
    $("by").value = state.info.consent.by;
  }
  $("start").disabled = !$("consent").checked;
  $("consent").addEventListener("change", () => { $("start").disabled = !$("consent").checked; });
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stopSession);
  $("reshare-btn").addEventListener("click", async () => {
    const channel = Number($("reshare").dataset.channel || 1);
    try {
      if (channel === 1) {
        if (await shareCall(await pickCall())) control({ type: "track", channel: 1, state: "live" });
      } else {
        await openMic();
        $("reshare").hidden = true;
        control({ type: "track", channel: 0, state: "live" });
      }
    } catch (err) {
      prompt(channel, `Could not capture: ${err.message || err}. Try again.`);
    }
  });
  $("mic").addEventListener("change", () => { if (state.started && !state.stopped) openMic().catch((e) => showError(e.message)); });
  listMics().catch(() => {});
}

main();
