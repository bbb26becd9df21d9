// The live-caption page: join a room, stream the microphone or a file, show everyone's words.
import { FORMATS } from "./formats.js";

const FRAME_MS = 40;
const TARGET_RATE = 16000;
const $ = (id) => document.getElementById(id);

const CLOSE_MESSAGES = {
  1003: "The server did not understand a message from this page.",
  1007: "The server refused the audio format.",
  1009: "An audio frame was too large for the server.",
  1011: "The server had an internal error.",
  1013: "The server is overloaded; try again later.",
  4001: "Your access token is missing, invalid or expired.",
  4003: "Your access token does not grant this room.",
  4008: "The session was idle too long or reached its maximum length.",
  4029: "Audio was sent faster than allowed.",
  4400: "The server refused a setting",
};
const FINAL_CODES = new Set([1000, 1003, 1007, 1009, 4001, 4003, 4400]);
const KEEP_AUDIO_S = 120; // audio kept for resending after a dropped connection

// Exposed for tests and debugging: what the page has shown and when.
const state = {
  ws: null, sessionId: null, joined: false, leaving: false, reconnectDelay: 500, reconnectTimer: null,
  mic: null, fileStreaming: false, finals: [], shown: [], audioStartedAt: null,
  // The transcript as shown (and downloaded): finals, each replaced by the turn settling it.
  transcript: [], turns: [],
  // Resuming: the session's token, the highest seq held, and the audio sent lately.
  resumeToken: null, lastSeq: 0, greeted: false, samplesSent: 0, kept: [], resumes: 0, lastErrorCode: null,
  finalMessages: 0, // final transcript messages taken in (a duplicate would count twice)
  participants: new Map(), // the room's, by session_id
};
window.streamscribe = state;

function setState(kind, text) {
  const el = $("state");
  el.dataset.state = kind;
  el.textContent = text;
}

function showMessage(text) {
  const el = $("message");
  el.textContent = text || "";
  el.hidden = !text;
}

function streamUrl() {
  const params = new URLSearchParams({
    sample_rate: String(TARGET_RATE), encoding: "pcm_s16le", partials: "true",
    room: $("room").value.trim(), name: $("name").value.trim() || "anonymous",
    language: $("language").value,
  });
  if ($("read").value) params.set("read", $("read").value);
  if ($("listen").checked) params.set("listen", "true");
  const token = new URLSearchParams(location.search).get("token");
  if (token) params.set("token", token); // a link with ?token=... from `streamscribe token`
  if (state.resumeToken) {
    params.set("resume", state.resumeToken);
    params.set("last_seq", String(state.lastSeq));
  }
  const translate = $("translate").value.replace(/\s+/g, "");
  if (translate && !$("listen").checked) params.set("translate", translate);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/stream?${params}`;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  setState("connecting", "Connecting…");
  const ws = new WebSocket(streamUrl());
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  state.greeted = false;
  ws.onopen = () => { state.reconnectDelay = 500; };
  // A listener (or a muted speaker) sends nothing else: keep the session from idling out.
  const keepalive = setInterval(() => {
    if (ws.readyState === WebSocket.OPEN) ws.send('{"type": "keepalive"}');
  }, 20000);
  ws.addEventListener("close", () => clearInterval(keepalive));
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = (event) => onClose(ws, event);
}

function onMessage(message) {
  // Replayed after a resume and already shown: skipped. Before its session.begin a connection
  // only gets a refusal, numbered on its own: taken as is.
  if (message.type === "session.begin") state.greeted = true;
  else if (state.greeted && message.seq <= state.lastSeq) return;
  else if (state.greeted) state.lastSeq = message.seq;
  switch (message.type) {
    case "session.begin":
      if (message.resumed) {
        state.resumes += 1;
        resendFrom(message.samples_received);
      } else {
        state.sessionId = message.session_id;
        speakerColour(message.session_id); // yours is the first colour
        state.resumeToken = message.resume_token;
        state.lastSeq = message.seq;
        state.samplesSent = 0;
        state.kept = [];
        state.audioStartedAt = null; // a new session counts audio time from zero
      }
      setState("connected", `Connected to room ${message.room}`);
      showMessage("");
      setJoined(true);
      break;
    case "transcript":
      if (message.is_final) state.finalMessages += 1;
      showTranscript(message);
      break;
    case "turn":
      showTurn(message);
      break;
    case "translation":
      showTranslation(message);
      break;
    case "room.participants": // on joining: the whole list; then changes one by one
      state.participants = new Map(message.participants.map((p) => [p.session_id, p]));
      showParticipants();
      break;
    case "room.join":
      state.participants.set(message.session_id, message);
      showParticipants();
      break;
    case "room.leave":
      state.participants.delete(message.session_id);
      showParticipants();
      break;
    case "error":
      state.lastErrorCode = message.code;
      showMessage(message.code === "invalid_parameter"
        ? `${CLOSE_MESSAGES[4400]}: ${message.message}`
        : `${message.message} (${message.code})`);
      break;
    case "session.end":
      break;
  }
}

function onClose(ws, event) {
  if (ws !== state.ws) return;
  state.ws = null;
  const resumeFailed = state.lastErrorCode === "resume_failed";
  state.lastErrorCode = null;
  if (state.leaving || event.code === 1000) {
    stopMic();
    forgetSession();
    setState("disconnected", "Not connected");
    setJoined(false);
    state.leaving = false;
    return;
  }
  if (resumeFailed) {
    forgetSession(); // the session is gone: start a new one at once
    state.reconnectTimer = setTimeout(connect, 0);
    return;
  }
  if (FINAL_CODES.has(event.code)) {
    stopMic();
    forgetSession();
    setState("error", "Disconnected");
    if (!$("message").textContent) showMessage(CLOSE_MESSAGES[event.code] || `Closed (${event.code}).`);
    setJoined(false);
    return;
  }
  const delay = state.reconnectDelay;
  state.reconnectDelay = Math.min(delay * 2, 10000);
  const reason = event.code === 1006 ? "The server cannot be reached." : (CLOSE_MESSAGES[event.code] || `Connection closed (${event.code}).`);
  showMessage(`${reason} Reconnecting in ${Math.round(delay / 100) / 10} s…`);
  setState("reconnecting", "Reconnecting…");
  state.reconnectTimer = setTimeout(connect, delay);
}

function forgetSession() {
  state.resumeToken = null;
  state.lastSeq = 0;
  state.kept = [];
  state.samplesSent = 0;
}

function setJoined(joined) {
  state.joined = joined;
  const speaking = joined && !$("listen").checked;
  $("join-button").disabled = joined;
  $("leave-button").disabled = !joined && !state.reconnectTimer;
  for (const id of ["room", "name", "language", "read", "translate", "listen"]) $(id).disabled = joined;
  $("mic-button").disabled = !speaking;
  $("file").disabled = !speaking || state.fileStreaming;
  if (!joined) showParticipants([]);
}

function leave() {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = null;
  stopMic();
  state.leaving = true;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "close" }));
  } else {
    state.leaving = false;
    setState("disconnected", "Not connected");
    setJoined(false);
  }
}

// ---- transcript view -------------------------------------------------------------------

function nearBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
}

// Lines go in speaking order by the server's wall clock of their start (wall_start), the
// room's one timeline: a speaker who joined later, or a history line sent on joining, goes
// where it was said, not where it arrived. A partial has no wall_start yet: it is placed by
// the time it came, and moves (at most a little) when its final comes.
function wallOf(message) {
  return message.wall_start > 0 ? message.wall_start : Date.now() / 1000 - (message.end - message.start);
}

function place(box, line, wall) {
  line.dataset.wall = String(wall);
  let next = null;
  for (const other of box.children) {
    if (other !== line && Number(other.dataset.wall) > wall) { next = other; break; }
  }
  if (line.nextSibling !== next || line.parentNode !== box) box.insertBefore(line, next);
}

function insertByWall(list, entry) {
  let i = list.length;
  while (i > 0 && list[i - 1].wall_start > entry.wall_start) i -= 1;
  list.splice(i, 0, entry);
}

function timeOfDay(wall) {
  return new Date(wall * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// A colour per speaker: distinct for the first eight this page sees, in the order it sees them.
const PALETTE = ["#1f5fbf", "#b3261e", "#1e7b34", "#8e44ad", "#c25e00", "#00838f", "#ad1457", "#5d6b00"];
const colours = new Map();
function speakerColour(sessionId) {
  if (!colours.has(sessionId)) colours.set(sessionId, PALETTE[colours.size % PALETTE.length]);
  return colours.get(sessionId);
}

function newLine() {
  const line = document.createElement("p");
  line.innerHTML = '<span class="when"></span><span class="who"></span><span class="text"></span>';
  return line;
}

function showTranscript(message) {
  const box = $("transcript");
  const follow = nearBottom(box);
  const id = `u-${message.utterance_id}`;
  let line = document.getElementById(id);
  if (!line) {
    line = newLine();
    line.id = id;
    line.className = "line";
  }
  if (line.classList.contains("final")) return; // a final never changes
  const wall = wallOf(message);
  place(box, line, line.dataset.wall && !message.is_final ? Number(line.dataset.wall) : wall);
  line.classList.toggle("partial", !message.is_final);
  line.classList.toggle("final", message.is_final);
  line.classList.toggle("history", message.history === true);
  line.style.setProperty("--speaker", speakerColour(message.session_id));
  line.querySelector(".when").textContent = timeOfDay(wall);
  line.querySelector(".who").textContent = `${message.speaker}:`;
  line.querySelector(".text").textContent = message.text;
  if (message.is_final) {
    const final = {
      speaker: message.speaker, session_id: message.session_id, utterance_id: message.utterance_id,
      start: message.start, end: message.end, text: message.text, wall_start: wall,
    };
    insertByWall(state.finals, final);
    insertByWall(state.transcript, final);
    state.shown.push({ ...final, shownAt: Date.now(), serverTiming: message.server_timing || null });
  }
  if (follow) box.scrollTop = box.scrollHeight;
}

// A turn's settled text takes the place of the finals it settles: the first of their lines
// becomes the turn's line, the others go.
function showTurn(message) {
  if (document.getElementById(`t-${message.turn_id}`)) return; // a turn never changes
  const box = $("transcript");
  const follow = nearBottom(box);
  const settles = new Set(message.utterance_ids);
  const lines = message.utterance_ids.map((id) => document.getElementById(`u-${id}`)).filter(Boolean);
  const settled = state.transcript.filter((e) => settles.has(e.utterance_id));
  const wall = message.wall_start > 0 ? message.wall_start
    : settled.length ? settled[0].wall_start : wallOf(message);
  const entry = {
    speaker: message.speaker, session_id: message.session_id, turn_id: message.turn_id,
    utterance_ids: message.utterance_ids, start: message.start, end: message.end, text: message.text,
    wall_start: wall,
  };
  state.turns.push(entry);
  state.transcript = state.transcript.filter((e) => !settles.has(e.utterance_id));
  if (!message.text) { // the turn held no speech after all
    lines.forEach((line) => line.remove());
    return;
  }
  insertByWall(state.transcript, entry);
  const line = lines[0] || newLine();
  for (const other of lines.slice(1)) other.remove();
  line.querySelectorAll(".translation").forEach((note) => note.remove());
  line.id = `t-${message.turn_id}`;
  line.className = message.history === true ? "line final turn history" : "line final turn";
  place(box, line, wall);
  line.style.setProperty("--speaker", speakerColour(message.session_id));
  line.querySelector(".when").textContent = timeOfDay(wall);
  line.querySelector(".who").textContent = `${message.speaker}:`;
  line.querySelector(".text").textContent = message.text;
  if (follow) box.scrollTop = box.scrollHeight;
}

function showTranslation(message) {
  const line = message.turn_id
    ? document.getElementById(`t-${message.turn_id}`)
    : document.getElementById(`u-${message.utterance_id}`);
  if (!line) return;
  line.querySelectorAll(".translation").forEach((old) => {
    if (old.lang === message.target_language) old.remove();
  });
  const note = document.createElement("span");
  note.className = message.error ? "translation failed" : "translation";
  note.lang = message.target_language;
  note.title = message.error ? message.error.message : `translated from ${languageName(message.source_language)}`;
  const lang = document.createElement("span");
  lang.className = "lang";
  lang.textContent = message.target_language;
  note.append(lang, message.error
    ? `translation unavailable (${message.error.code})`
    : message.text);
  line.appendChild(note);
  const entry = state.transcript.find((e) => message.turn_id
    ? e.turn_id === message.turn_id : e.utterance_id === message.utterance_id);
  if (entry && !message.error) (entry.translations ||= {})[message.target_language] = message.text;
}

function showParticipants() {
  const list = $("participants");
  const participants = [...state.participants.values()].sort((a, b) =>
    a.name.localeCompare(b.name) || a.session_id.localeCompare(b.session_id));
  list.replaceChildren(...participants.map((p) => {
    const item = document.createElement("li");
    item.style.setProperty("--speaker", speakerColour(p.session_id));
    item.textContent = p.session_id === state.sessionId ? `${p.name} (you)` : p.name;
    if (p.read) item.textContent += ` · reads ${languageName(p.read)}`;
    if (p.listener) {
      item.classList.add("listener");
      item.textContent += " · listening";
    }
    return item;
  }));
}

function download(format) {
  const { type, build } = FORMATS[format];
  const blob = new Blob([build(state.transcript)], { type });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `transcript-${$("room").value.trim() || "room"}.${format}`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// ---- microphone ------------------------------------------------------------------------

// Audio is kept (the last KEEP_AUDIO_S) so that what the server did not store before a drop
// is sent again when the session resumes; audio captured while reconnecting waits there too.
function send(buffer) {
  state.kept.push({ start: state.samplesSent, pcm: new Int16Array(buffer) });
  state.samplesSent += buffer.byteLength / 2;
  while (state.kept.length && state.kept[0].start < state.samplesSent - KEEP_AUDIO_S * TARGET_RATE) {
    state.kept.shift();
  }
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(buffer);
}

function resendFrom(samplesReceived) {
  for (const { start, pcm } of state.kept) {
    const skip = Math.max(0, samplesReceived - start);
    if (skip < pcm.length) state.ws.send(pcm.subarray(skip).slice().buffer);
  }
}

async function startMic() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    showMessage(error.name === "NotAllowedError"
      ? "Microphone access was denied. Allow it in the browser's site settings and try again."
      : `The microphone could not be opened: ${error.message}`);
    return;
  }
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/worklet.js");
  const source = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "capture-16k");
  const mute = context.createGain();
  mute.gain.value = 0;
  source.connect(capture).connect(mute).connect(context.destination);
  capture.port.onmessage = (event) => {
    // wall time of audio second 0 (the server counts time in samples it received)
    if (state.audioStartedAt === null) state.audioStartedAt = Date.now() - FRAME_MS;
    send(event.data.pcm);
    $("level").value = Math.min(1, event.data.level * 4);
  };
  state.mic = { stream, context };
  $("mic-button").textContent = "Stop microphone";
  $("mic-button").setAttribute("aria-pressed", "true");
}

function stopMic() {
  if (!state.mic) return;
  state.mic.stream.getTracks().forEach((track) => track.stop());
  state.mic.context.close();
  state.mic = null;
  $("level").value = 0;
  $("mic-button").textContent = "Start microphone";
  $("mic-button").setAttribute("aria-pressed", "false");
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "finalize" }));
}

// ---- streaming a file --------------------------------------------------------------------

async function decodeTo16k(file) {
  const bytes = await file.arrayBuffer();
  const decoder = new AudioContext();
  let decoded;
  try {
    decoded = await decoder.decodeAudioData(bytes);
  } finally {
    decoder.close();
  }
  const offline = new OfflineAudioContext(1, Math.ceil(decoded.duration * TARGET_RATE), TARGET_RATE);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  return (await offline.startRendering()).getChannelData(0);
}

async function streamFile(file) {
  let samples;
  try {
    samples = await decodeTo16k(file);
  } catch (error) {
    showMessage(`This file could not be decoded as audio: ${file.name}`);
    return;
  }
  state.fileStreaming = true;
  $("file").disabled = true;
  const frame = (TARGET_RATE * FRAME_MS) / 1000;
  const started = performance.now();
  if (state.audioStartedAt === null) state.audioStartedAt = Date.now();
  for (let i = 0, n = 0; i < samples.length && (state.ws || state.reconnectTimer); i += frame, n++) {
    const wait = started + n * FRAME_MS - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const chunk = samples.subarray(i, i + frame);
    const pcm = new Int16Array(chunk.length);
    for (let k = 0; k < chunk.length; k++) pcm[k] = Math.round(Math.max(-1, Math.min(1, chunk[k])) * 32767);
    send(pcm.buffer);
  }
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "finalize" }));
  state.fileStreaming = false;
  $("file").value = "";
  setJoined(state.joined);
}

// ---- languages: what the server's model speaks (GET /v1/languages) -------------------------

const NAMES = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(["en"], { type: "language" }) : null;

function languageName(code) {
  try {
    return (NAMES && NAMES.of(code)) || code;
  } catch {
    return code;
  }
}

function options(select, codes, first) {
  const sorted = [...codes].sort((a, b) => languageName(a).localeCompare(languageName(b)));
  select.replaceChildren(...first, ...sorted.map((code) => new Option(`${languageName(code)} (${code})`, code)));
}

async function loadLanguages() {
  let info;
  try {
    const reply = await fetch("/v1/languages");
    if (!reply.ok) return; // an older server: English, as the page starts
    info = await reply.json();
  } catch {
    return;
  }
  const spoken = $("language");
  options(spoken, info.spoken, info.detect ? [new Option("Detect", "auto")] : []);
  spoken.value = info.spoken.includes("en") ? "en" : info.spoken[0];
  options($("read"), info.read, [new Option("As spoken", "")]);
  state.languages = info;
}

// ---- wiring ------------------------------------------------------------------------------

loadLanguages();

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!$("room").value.trim()) return;
  state.leaving = false;
  connect();
});
$("leave-button").addEventListener("click", leave);
$("mic-button").addEventListener("click", () => (state.mic ? stopMic() : startMic()));
$("file").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) streamFile(file);
});
for (const button of document.querySelectorAll("[data-format]")) {
  button.addEventListener("click", () => download(button.dataset.format));
}
