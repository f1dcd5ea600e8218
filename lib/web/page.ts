/**
 * The listener page (`/`): plain HTML with inline CSS and JavaScript, no build step, no
 * framework, nothing loaded from elsewhere. It shows what `/events` (Server-Sent Events of
 * {@linkcode WebStatus}) says — now playing with its position, the queue, the listener count
 * and the song list with a "request" button per song — and plays `/stream` in an `<audio>`
 * element. A request POSTs `{"song": title}` to `/request` and shows the server's answer,
 * which is one of the three PLAY answers of the protocol (`Song X has been requested!`,
 * `Song has already been requested`, `Song does not exist`) or the budget refusal.
 *
 * @module
 */

/** The page's HTML. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>soundsock radio</title>
<style>
body { font: 16px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 1rem auto; padding: 0 1rem; }
h1 { font-size: 1.4rem; }
.now { padding: .6rem .8rem; background: #eef3ff; border-radius: .4rem; }
#title { font-weight: 600; }
progress { width: 100%; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid #ddd; }
#message { min-height: 1.4em; font-weight: 600; }
#message.refused { color: #a40000; }
button { font: inherit; }
</style>
</head>
<body>
<h1>soundsock radio</h1>
<div class="now">
  <div>Now playing: <span id="title">—</span> <span id="source"></span></div>
  <div><span id="position">0:00</span> / <span id="duration">0:00</span></div>
  <progress id="progress" max="1" value="0"></progress>
  <div>Listeners: <span id="listeners">0</span></div>
</div>
<p><button id="play" type="button">▶ Play</button>
<audio id="player" preload="none"></audio> <span id="playstate"></span></p>
<h2>Queue</h2>
<ol id="queue"></ol>
<p id="queue-empty">The request queue is empty.</p>
<div id="message" role="status"></div>
<h2>Songs</h2>
<table><thead><tr><th>#</th><th>Title</th><th>Length</th><th></th></tr></thead>
<tbody id="songs"></tbody></table>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const mmss = (ms) => { const s = Math.floor(ms / 1000); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); };
let songsKey = "";
function render(st) {
  const np = st.nowPlaying;
  $("title").textContent = np ? np.title : "—";
  $("source").textContent = np && np.source === "request" ? "(requested)" : "";
  $("position").textContent = mmss(np ? np.positionMs : 0);
  $("duration").textContent = mmss(np ? np.durationMs : 0);
  $("progress").value = np && np.durationMs ? np.positionMs / np.durationMs : 0;
  $("listeners").textContent = String(st.listeners.total);
  const q = $("queue");
  q.replaceChildren(...st.queue.map((e) => { const li = document.createElement("li"); li.textContent = e.title + " (" + mmss(e.durationMs) + ")"; return li; }));
  $("queue-empty").hidden = st.queue.length > 0;
  const key = st.songs.map((s) => s.title).join("\\n");
  if (key === songsKey) return;
  songsKey = key;
  $("songs").replaceChildren(...st.songs.map((s) => {
    const tr = document.createElement("tr");
    for (const text of [String(s.index), s.title, mmss(s.durationMs)]) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button"; b.textContent = "request"; b.className = "request"; b.dataset.song = s.title;
    b.addEventListener("click", () => request(s.title));
    td.append(b); tr.append(td);
    return tr;
  }));
}
async function request(song) {
  const m = $("message");
  try {
    const r = await fetch("/request", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ song }) });
    const a = await r.json();
    m.textContent = a.message;
    m.className = a.result === "requested" ? "" : "refused";
    if (a.status) render(a.status);
  } catch (e) { m.textContent = "The request failed: " + e.message; m.className = "refused"; }
}
function connect() {
  const es = new EventSource("/events");
  es.onmessage = (e) => render(JSON.parse(e.data));
}
const player = $("player");
$("play").addEventListener("click", () => {
  if (!player.paused) { player.pause(); player.removeAttribute("src"); player.load(); $("play").textContent = "▶ Play"; return; }
  player.src = "/stream?t=" + Date.now();
  player.play().then(() => { $("play").textContent = "■ Stop"; }, (e) => { $("playstate").textContent = "Cannot play: " + e.message; });
});
player.addEventListener("error", () => { $("playstate").textContent = "Stream error" + (player.error ? " " + player.error.code : ""); });
fetch("/status.json").then((r) => r.json()).then(render).catch(() => {});
connect();
</script>
</body>
</html>
`;
