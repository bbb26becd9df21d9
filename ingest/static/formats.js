// Transcript exports. Each entry is a turn (its settled text, with turn_id and the
// utterance_ids it settles) or a final no turn has settled yet (utterance_id):
// {speaker, session_id, start, end, text, ...}.

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

export function clock(seconds, separator = ".") {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000);
  const m = Math.floor((ms % 3600000) / 60000);
  const s = Math.floor((ms % 60000) / 1000);
  return `${pad(h)}:${pad(m)}:${pad(s)}${separator}${pad(ms % 1000, 3)}`;
}

export function shortClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${pad(Math.floor(s / 60))}:${pad(s % 60)}`;
}

// Finals of several speakers carry times of their own streams; the page orders them by the
// moment they arrived, which is how they were shown.
export function toText(finals) {
  return finals.map((f) => `[${shortClock(f.start)}] ${f.speaker}: ${f.text}`).join("\n") + "\n";
}

// Subtitles go by start time (a stable sort keeps arrival order for equal starts).
function byStart(finals) {
  return [...finals].sort((a, b) => a.start - b.start);
}

export function toSrt(finals) {
  return byStart(finals)
    .map((f, i) => `${i + 1}\n${clock(f.start, ",")} --> ${clock(Math.max(f.end, f.start), ",")}\n${f.speaker}: ${f.text}\n`)
    .join("\n");
}

export function toVtt(finals) {
  const cues = byStart(finals).map((f) => `${clock(f.start)} --> ${clock(Math.max(f.end, f.start))}\n<v ${f.speaker}>${f.text}\n`);
  return ["WEBVTT\n", ...cues].join("\n");
}

export function toJson(entries) {
  return JSON.stringify({ transcript: entries }, null, 2) + "\n";
}

export const FORMATS = {
  txt: { type: "text/plain", build: toText },
  srt: { type: "application/x-subrip", build: toSrt },
  vtt: { type: "text/vtt", build: toVtt },
  json: { type: "application/json", build: toJson },
};
