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

// Each speaker's start/end count from that speaker's own stream; wall_start is the server's
// wall clock of the start (Unix seconds), one timeline for the room. Exports go by it, their
// times counted from the first entry's, so a room reads in speaking order whoever joined when.
// An entry without wall_start (an older server) keeps its own stream's times.
export function onTimeline(entries) {
  const walls = entries.length > 0 && entries.every((e) => e.wall_start > 0);
  const at = (e) => (walls ? e.wall_start : e.start);
  const origin = walls ? Math.min(...entries.map(at)) : 0;
  return entries
    .map((e, i) => ({ e, i, from: at(e) - origin }))
    .sort((a, b) => a.from - b.from || a.i - b.i) // stable: arrival order for equal starts
    .map(({ e, from }) => ({ ...e, from, to: from + Math.max(0, e.end - e.start) }));
}

// Translations go with their line: one more line per language, "[cy] ...".
function translated(e) {
  return Object.entries(e.translations || {}).map(([lang, text]) => `[${lang}] ${text}`);
}

export function toText(entries) {
  return onTimeline(entries)
    .map((e) => [`[${shortClock(e.from)}] ${e.speaker}: ${e.text}`, ...translated(e).map((t) => `    ${t}`)].join("\n"))
    .join("\n") + "\n";
}

export function toSrt(entries) {
  return onTimeline(entries)
    .map((e, i) => [`${i + 1}`, `${clock(e.from, ",")} --> ${clock(e.to, ",")}`, `${e.speaker}: ${e.text}`, ...translated(e)].join("\n") + "\n")
    .join("\n");
}

export function toVtt(entries) {
  const cues = onTimeline(entries).map((e) => [`${clock(e.from)} --> ${clock(e.to)}`, `<v ${e.speaker}>${e.text}`, ...translated(e)].join("\n") + "\n");
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
