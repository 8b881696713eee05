"""The web page of `genlab serve`: plain HTML and a little JavaScript, no build step."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>genlab</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 980px; padding: 12px;
        color: #222; }
 h1 { font-size: 22px; margin: 4px 0 2px; } h2 { font-size: 17px; margin: 18px 0 6px; }
 fieldset { border: 1px solid #ccc; border-radius: 6px; margin: 8px 0; }
 label { display: inline-block; margin: 3px 10px 3px 0; }
 input[type=text], input[type=number], input[type=password] { width: 9em; }
 #prompt-like { width: 24em; } #q { width: 24em; }
 pre { background: #f6f6f6; padding: 8px; white-space: pre-wrap; border-radius: 4px; }
 .note { color: #805; } .muted { color: #666; font-size: 13px; }
 .hits { display: flex; flex-wrap: wrap; gap: 8px; }
 .hit { border: 1px solid #ddd; border-radius: 4px; padding: 4px; max-width: 300px;
        font-size: 13px; }
 .hit img { image-rendering: pixelated; width: 84px; display: block; }
 #output img { image-rendering: pixelated; max-width: 100%; }
</style>
</head>
<body>
<h1>genlab</h1>
<div class="muted" id="info">loading...</div>
<p class="note" id="token-note" hidden>This server requires a token: enter it below
(the <code>--token</code> given to <code>genlab serve</code>).</p>
<label id="token-box" hidden>Token <input type="password" id="token"></label>

<h2>Generate</h2>
<fieldset>
 <label>Run <select id="run"></select></label>
 <label>Samples <input type="number" id="n" value="1" min="1"></label>
 <label>Seed <input type="number" id="seed" value="0" min="0"></label>
 <label><input type="checkbox" id="keep" checked> keep in the store</label>
 <div id="options"></div>
 <button id="generate">Generate</button> <span class="muted" id="status"></span>
</fieldset>
<div id="output"></div>

<h2>Search past generations</h2>
<fieldset>
 <input type="text" id="q" placeholder="words to look for">
 <label>Kind <select id="kind"><option value="">any</option><option>image</option>
  <option>text</option><option>audio</option></select></label>
 <label>Mode <select id="mode"><option>hybrid</option><option>keyword</option>
  <option>vector</option></select></label>
 <button id="search">Search</button> <button id="history">Recent</button>
</fieldset>
<div class="hits" id="hits"></div>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
let runs = [];

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = $("token").value;
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
}

async function api(path, init) {
  const opts = init || {};
  const r = await fetch(path, Object.assign({}, opts, {headers: headers(opts.headers)}));
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) {}
    throw new Error(msg);
  }
  return r;
}

function say(text) { $("status").textContent = text; }

async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  $("info").textContent = "genlab " + info.version + (info.token_required
    ? " \\u2014 a token is required" : " \\u2014 no token required");
  $("token-note").hidden = !info.token_required;
  $("token-box").hidden = !info.token_required;
  $("n").max = info.limits.max_n;
}

let runsAsked = 0;
async function loadRuns() {
  const ask = ++runsAsked;
  let got;
  try {
    got = await (await api("/api/runs")).json();
  } catch (e) { if (ask === runsAsked) say(e.message); return; }
  if (ask !== runsAsked) return;  // a later request answers
  runs = got;
  say("");
  const sel = $("run");
  const kept = sel.value;
  sel.innerHTML = "";
  for (const r of runs) {
    const o = document.createElement("option");
    o.value = r.name; o.textContent = r.name + " (" + r.family + ", " + r.kind + ")";
    sel.appendChild(o);
  }
  if (runs.some((r) => r.name === kept)) sel.value = kept;
  if (!runs.length) say("no runs found: train one with 'genlab train'");
  showOptions();
}

function showOptions() {
  const run = runs.find((r) => r.name === $("run").value);
  const box = $("options");
  box.innerHTML = "";
  if (!run) return;
  for (const f of run.options) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "text"; input.dataset.name = f.name; input.dataset.type = f.type;
    input.id = "opt-" + f.name;
    input.value = f.default === null || f.default === undefined ? "" : String(f.default);
    if (f.name === "prompt") input.id = "prompt-like";
    label.append(f.name.replace(/_/g, " ") + " ", input);
    box.appendChild(label);
  }
}

function optionValues() {
  const out = {};
  for (const input of $("options").querySelectorAll("input")) {
    const v = input.value, t = input.dataset.type;
    if (v === "") continue;
    if (/^(int|float)/.test(t) && !isNaN(Number(v))) out[input.dataset.name] = Number(v);
    else if (/bool/.test(t) && (v === "true" || v === "false")) {
      out[input.dataset.name] = v === "true";
    }
    else out[input.dataset.name] = v;
  }
  return out;
}

async function generate() {
  const run = runs.find((r) => r.name === $("run").value);
  if (!run) return;
  const body = JSON.stringify({n: Number($("n").value), seed: Number($("seed").value),
                               options: optionValues(), store: $("keep").checked});
  const out = $("output");
  out.innerHTML = "";
  say("generating...");
  try {
    const r = await api("/api/runs/" + encodeURIComponent(run.name) + "/generate",
      {method: "POST", body: body, headers: {"Content-Type": "application/json"}});
    const type = r.headers.get("Content-Type") || "";
    if (run.streams) {
      const pre = document.createElement("pre");
      pre.id = "generated-text";
      out.appendChild(pre);
      const reader = r.body.getReader(), dec = new TextDecoder();
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        pre.textContent += dec.decode(value, {stream: true});
      }
    } else {
      const url = URL.createObjectURL(await r.blob());
      let el;
      if (type.startsWith("image/")) {
        el = document.createElement("img");
      } else if (type.startsWith("audio/")) {
        el = document.createElement("audio"); el.controls = true;
      } else {
        el = document.createElement("a"); el.textContent = "download"; el.download = "samples";
      }
      el.id = "generated";
      if (el.tagName === "A") el.href = url; else el.src = url;
      out.appendChild(el);
      const stored = JSON.parse(r.headers.get("X-Genlab-Stored") || "[]");
      const fresh = stored.filter((s) => s.status === "new").length;
      if (stored.length) say("done; " + fresh + " new in the store, " +
                             (stored.length - fresh) + " duplicates");
      else say("done");
      return;
    }
    say("done");
  } catch (e) { say("error: " + e.message); }
}

function showHits(hits) {
  const box = $("hits");
  box.innerHTML = "";
  if (!hits.length) { box.textContent = "no results"; return; }
  for (const h of hits) {
    const d = document.createElement("div");
    d.className = "hit";
    const title = document.createElement("div");
    title.className = "muted";
    title.textContent = "#" + h.id + " " + h.run + " (" + h.family + ") seen " + h.seen +
      (h.score !== undefined ? " \\u00b7 score " + h.score.toFixed(4) : "");
    d.appendChild(title);
    if (h.kind === "image") {
      const img = document.createElement("img");
      img.alt = h.text;
      authorizedSrc(img, h.url);
      d.appendChild(img);
      d.appendChild(document.createTextNode(h.text));
    } else if (h.kind === "audio") {
      const a = document.createElement("audio"); a.controls = true; authorizedSrc(a, h.url);
      d.appendChild(a);
    } else {
      const p = document.createElement("pre"); p.textContent = h.text; d.appendChild(p);
    }
    box.appendChild(d);
  }
}

async function authorizedSrc(el, url) {
  try { el.src = URL.createObjectURL(await (await api(url)).blob()); } catch (e) {}
}

async function search() {
  const p = new URLSearchParams({q: $("q").value, mode: $("mode").value, k: "12"});
  if ($("kind").value) p.set("kind", $("kind").value);
  try { showHits(await (await api("/api/search?" + p)).json()); }
  catch (e) { $("hits").textContent = "error: " + e.message; }
}

async function history() {
  const p = new URLSearchParams({limit: "12"});
  if ($("kind").value) p.set("kind", $("kind").value);
  try { showHits(await (await api("/api/history?" + p)).json()); }
  catch (e) { $("hits").textContent = "error: " + e.message; }
}

$("run").addEventListener("change", showOptions);
$("generate").addEventListener("click", generate);
$("search").addEventListener("click", search);
$("history").addEventListener("click", history);
$("q").addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
$("token").addEventListener("change", loadRuns);
loadInfo().then(loadRuns);
</script>
</body>
</html>
"""
