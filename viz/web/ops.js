// Live operations picture: draws the twin's map on a canvas, applies the state deltas
// pushed over the WebSocket, and sends operator controls.  No framework, no CDN.
"use strict";

const LEVEL_COLOURS = ["#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#fee08b",
  "#d9ef8b", "#a6d96a", "#66bd63", "#1a9850", "#1a9850"];
const UNIT_COLOURS = { available: "#58a6ff", returning: "#79c0ff", dispatched: "#f0883e", en_route: "#ff7b72",
  on_scene: "#ff3b30", transport: "#d2a8ff", at_hospital: "#bc8cff", out_of_service: "#6e7681" };
// the KPIs in the panel, in order; their labels and units come with the map (map.kpi_labels: twin.results')
const KPI_SHOWN = ["mean_network_speed_kmh", "trips_completed", "mean_travel_time_s", "total_delay_h"];

const params = new URLSearchParams(location.search);
const token = params.get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const canvas = document.getElementById("map");
const ctx = canvas.getContext("2d");
let map = null, state = null, view = null, mode = null, drawPending = false;
let operator = false;
let replay = null; // recorded levels shown by the time slider, or null: live
let labelBoxes = []; // [cx, cy, half width, half height] of the labels drawn, so others avoid them

function $(id) { return document.getElementById(id); }
function say(text) { $("msg").textContent = text; }
function kpiLabel(key) { return (map && map.kpi_labels && map.kpi_labels[key]) || [key.replaceAll("_", " "), ""]; }
function fmt(v, d = 0) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en", { maximumFractionDigits: d }); }

// ------------------------------------------------------------------ view
function fit() {
  const r = canvas.getBoundingClientRect();
  canvas.width = Math.max(1, Math.round(r.width * devicePixelRatio));
  canvas.height = Math.max(1, Math.round(r.height * devicePixelRatio));
  const [x0, y0, x1, y1] = map.bounds;
  const legend = ($("legend").getBoundingClientRect().height + 12) * devicePixelRatio; // the map clears the legend
  const h = Math.max(canvas.height - legend, canvas.height / 2);
  const s = 0.94 * Math.min(canvas.width / Math.max(x1 - x0, 1), h / Math.max(y1 - y0, 1));
  view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2 - (canvas.height - h) / 2 / s, s: s };
}
function toScreen(x, y) { return [canvas.width / 2 + (x - view.cx) * view.s, canvas.height / 2 - (y - view.cy) * view.s]; }
function toWorld(px, py) { return [view.cx + (px - canvas.width / 2) / view.s, view.cy - (py - canvas.height / 2) / view.s]; }
function eventWorld(e) {
  const r = canvas.getBoundingClientRect();
  return toWorld((e.clientX - r.left) * devicePixelRatio, (e.clientY - r.top) * devicePixelRatio);
}

// ------------------------------------------------------------------ drawing
function requestDraw() { if (!drawPending) { drawPending = true; requestAnimationFrame(draw); } }

function draw() {
  drawPending = false;
  if (!map || !view) return;
  ctx.fillStyle = "#0d1014";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  labelBoxes = [];
  drawZones();
  const n = map.n_links, X = map.x, Y = map.y, S = map.src, D = map.dst;
  const levels = replay ? replay.levels : state ? state.levels : null;
  const paths = new Map();
  for (let i = 0; i < n; i++) {
    const lv = levels ? levels[i] : 10;
    let p = paths.get(lv);
    if (!p) { p = new Path2D(); paths.set(lv, p); }
    const [ax, ay] = toScreen(X[S[i]], Y[S[i]]), [bx, by] = toScreen(X[D[i]], Y[D[i]]);
    p.moveTo(ax, ay); p.lineTo(bx, by);
  }
  const w = Math.max(2, Math.min(6, view.s * 10)) * devicePixelRatio;
  if (map.bridges.length) { // bridges: a light casing under their colour
    const p = new Path2D();
    for (const i of map.bridges) {
      const [ax, ay] = toScreen(X[S[i]], Y[S[i]]), [bx, by] = toScreen(X[D[i]], Y[D[i]]);
      p.moveTo(ax, ay); p.lineTo(bx, by);
    }
    ctx.strokeStyle = "#c9d1d9"; ctx.lineWidth = w + 5 * devicePixelRatio; ctx.stroke(p);
  }
  ctx.lineWidth = w;
  let drawn = 0;
  for (const [lv, p] of paths) {
    if (lv < 0) continue;
    ctx.strokeStyle = LEVEL_COLOURS[Math.max(0, Math.min(10, lv))];
    ctx.stroke(p); drawn++;
  }
  if (paths.has(-1)) {
    ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
    ctx.strokeStyle = "#ff00ff"; ctx.lineWidth = w + 1; ctx.stroke(paths.get(-1)); ctx.setLineDash([]);
  }
  if (state && state.restricted && state.restricted.length) {
    const p = new Path2D();
    for (const i of state.restricted) {
      const [ax, ay] = toScreen(X[S[i]], Y[S[i]]), [bx, by] = toScreen(X[D[i]], Y[D[i]]);
      p.moveTo(ax, ay); p.lineTo(bx, by);
    }
    ctx.strokeStyle = "#ff9f1c"; ctx.lineWidth = w + 2; ctx.stroke(p);
  }
  canvas.dataset.links = String(n);
  canvas.dataset.drawn = String(drawn);
  canvas.dataset.closed = String(levels ? levels.filter(v => v === -1).length : 0);
  drawMarkers();
  drawZoneLabels();
  drawLabels();
}

function marker(x, y, r, fill, shape) {
  const [sx, sy] = toScreen(x, y);
  ctx.fillStyle = fill; ctx.beginPath();
  if (shape === "square") ctx.rect(sx - r, sy - r, 2 * r, 2 * r); else ctx.arc(sx, sy, r, 0, 2 * Math.PI);
  ctx.fill();
  return [sx, sy];
}

function drawMarkers() {
  const k = devicePixelRatio;
  ctx.font = `${11 * k}px system-ui`;
  for (const h of map.hospitals) {
    const [sx, sy] = toScreen(h.x, h.y); ctx.fillStyle = "#fff"; ctx.fillRect(sx - 6 * k, sy - 2 * k, 12 * k, 4 * k);
    ctx.fillRect(sx - 2 * k, sy - 6 * k, 4 * k, 12 * k);
  }
  if (!state) return;
  if (state.live) drawSensors(k);
  for (const sh of (state.evacuation ? state.evacuation.shelters : [])) {
    const [sx, sy] = toScreen(sh[0], sh[1]);
    ctx.fillStyle = "#3fb950"; ctx.beginPath();
    ctx.moveTo(sx, sy - 8 * k); ctx.lineTo(sx + 7 * k, sy + 5 * k); ctx.lineTo(sx - 7 * k, sy + 5 * k); ctx.fill();
  }
  ctx.font = `bold ${12 * k}px system-ui`;
  const labels = []; // [text, x, y, radius, colour], placed once every shape is drawn (incidents first)
  let nInc = 0;
  for (const [id, inc] of Object.entries(state.incidents || {})) {
    const r = (6 + inc.severity) * k;
    const [sx, sy] = marker(inc.x, inc.y, r, "#ff3b30dd");
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5 * k; ctx.stroke();
    labels.push([`#${id} ${inc.type.replaceAll("_", " ")} · ${inc.stage.replaceAll("_", " ")}`, sx, sy, r, "#fff", `#${id}`]);
    nInc++;
  }
  canvas.dataset.incidents = String(nInc);
  for (const [name, st] of Object.entries(state.stations || {})) {
    const [sx, sy] = marker(st.x, st.y, 6 * k, st.removed || !st.in_service ? "#6e7681" : "#e6edf3", "square");
    if (st.added) { ctx.strokeStyle = "#39d0d8"; ctx.lineWidth = 2 * k; ctx.strokeRect(sx - 9 * k, sy - 9 * k, 18 * k, 18 * k); }
    if (st.removed) {
      ctx.strokeStyle = "#ff7b72"; ctx.lineWidth = 2 * k; ctx.beginPath();
      ctx.moveTo(sx - 8 * k, sy - 8 * k); ctx.lineTo(sx + 8 * k, sy + 8 * k); ctx.moveTo(sx + 8 * k, sy - 8 * k); ctx.lineTo(sx - 8 * k, sy + 8 * k); ctx.stroke();
    }
    const tag = st.removed ? " (removed)" : st.added ? " (new)" : st.in_service ? "" : " (out of service)";
    labels.push([name + tag, sx, sy, 9 * k, st.added ? "#39d0d8" : st.removed || !st.in_service ? "#8b949e" : "#e6edf3"]);
  }
  for (const u of Object.values(state.units || {})) {
    marker(u[0], u[1], 4 * k, UNIT_COLOURS[u[3]] || "#58a6ff");
  }
  for (const [, sx, sy, r] of labels) labelBoxes.push([sx, sy, r, r]); // labels keep off the symbols
  // full labels where they fit; where crowded, incidents keep their number and stations none (hover tells)
  for (const [text, sx, sy, r, colour, short] of labels) {
    if (!placeLabel(text, sx, sy, r, colour, false) && short) placeLabel(short, sx, sy, r, colour, true);
  }
}

// a label beside its symbol: right, left, above or below, wherever it overlaps no other label
// (with force, to the right even so); whether it was drawn
function placeLabel(text, sx, sy, r, colour, force) {
  const k = devicePixelRatio, tw = ctx.measureText(text).width, th = 13 * k, gap = 4 * k;
  const spots = [[sx + r + gap, sy + th / 3], [sx - r - gap - tw, sy + th / 3], [sx - tw / 2, sy - r - gap], [sx - tw / 2, sy + r + th]];
  const free = spots.find(([x, y]) => !labelBoxes.some(b => Math.abs(b[0] - (x + tw / 2)) < b[2] + tw / 2 && Math.abs(b[1] - (y - th / 3)) < b[3] + th / 2));
  if (!free && !force) return false;
  const [x, y] = free || spots[0];
  labelBoxes.push([x + tw / 2, y - th / 3, tw / 2 + 2 * k, th / 2 + 1 * k]);
  halo(text, x, y, colour);
  return true;
}

// text with a dark halo, legible over any road colour
function halo(text, x, y, colour) {
  ctx.lineWidth = 3 * devicePixelRatio; ctx.strokeStyle = "#0d1014"; ctx.strokeText(text, x, y);
  ctx.fillStyle = colour; ctx.fillText(text, x, y);
}

const ZONE_STYLE = { ordered: ["#ff3b3040", "#ff3b30"], clearing: ["#d2992240", "#d29922"], clear: ["#3fb95030", "#3fb950"] };
// evacuation zones as areas (the hull of their nodes), coloured by the order's progress
function drawZones() {
  if (!map.zone_hulls || !(map.evacuation || (state && state.evacuation))) return;
  const k = devicePixelRatio, ev = state && state.evacuation ? state.evacuation.zones : {};
  let nZones = 0;
  map.zones.forEach((z, i) => {
    const hull = map.zone_hulls[i];
    if (!hull || hull.length < 3) return;
    const p = new Path2D();
    hull.forEach((pt, j) => { const [sx, sy] = toScreen(pt[0], pt[1]); if (j) p.lineTo(sx, sy); else p.moveTo(sx, sy); });
    p.closePath();
    const st = ev[z.name];
    if (st) {
      const [fill, line] = ZONE_STYLE[st[0]] || ZONE_STYLE.ordered;
      ctx.fillStyle = fill; ctx.fill(p); ctx.strokeStyle = line; ctx.lineWidth = 2 * k; ctx.stroke(p); nZones++;
    } else { ctx.strokeStyle = "#30363d"; ctx.lineWidth = k; ctx.stroke(p); }
  });
  canvas.dataset.zones = String(nZones);
}

// the ordered zones' names and state (two lines at the zone's centre)
function drawZoneLabels() {
  if (!state || !state.evacuation) return;
  const k = devicePixelRatio;
  for (const z of map.zones) {
    const st = state.evacuation.zones[z.name];
    if (!st) continue;
    const [sx, sy] = toScreen(z.x, z.y);
    const line2 = st[0] + (st[1] ? `, ${st[1].toLocaleString("en")} to leave` : "");
    ctx.font = `bold ${13 * k}px system-ui`;
    const w1 = ctx.measureText(z.name).width;
    halo(z.name, sx - w1 / 2, sy - 3 * k, "#ffffff");
    ctx.font = `bold ${12 * k}px system-ui`;
    const w2 = ctx.measureText(line2).width;
    halo(line2, sx - w2 / 2, sy + 12 * k, ZONE_STYLE[st[0]][1]);
    labelBoxes.push([sx, sy + 3 * k, Math.max(w1, w2) / 2 + 3 * k, 16 * k]);
  }
}

// named roads and bridges: each name once, along its longest link that fits, never overlapping
function drawLabels() {
  const k = devicePixelRatio, X = map.x, Y = map.y, S = map.src, D = map.dst, boxes = labelBoxes;
  for (const [name, rank, links] of map.labels) {
    const size = rank === 0 ? 13 : 11;
    ctx.font = `${rank <= 1 ? "bold " : ""}${size * k}px system-ui`;
    const tw = ctx.measureText(name).width, th = size * k;
    for (const i of links) {
      let [ax, ay] = toScreen(X[S[i]], Y[S[i]]), [bx, by] = toScreen(X[D[i]], Y[D[i]]);
      const len = Math.hypot(bx - ax, by - ay);
      if (rank > 0 && len < tw * 1.1) continue; // roads only where the link is long enough at this zoom
      if (ax > bx) { [ax, bx, ay, by] = [bx, ax, by, ay]; }
      const mx = (ax + bx) / 2, my = (ay + by) / 2;
      if (mx < 0 || my < 0 || mx > canvas.width || my > canvas.height) continue;
      const vertical = rank > 0 && Math.abs(by - ay) > Math.abs(bx - ax);
      const hw = (vertical ? th : tw) / 2 + 3 * k, hh = (vertical ? tw : th) / 2 + 3 * k;
      if (boxes.some(b => Math.abs(b[0] - mx) < b[2] + hw && Math.abs(b[1] - my) < b[3] + hh)) continue;
      boxes.push([mx, my, hw, hh]);
      ctx.save(); ctx.translate(mx, my);
      if (rank > 0) ctx.rotate(Math.atan2(by - ay, bx - ax));
      halo(name, -tw / 2, rank > 0 ? -4 * k : -8 * k, rank === 0 ? "#ffffff" : "#c9d1d9");
      ctx.restore();
      break;
    }
  }
}

// sensor links (shadow mode): a cyan ring at each observed link's middle; the charted ones numbered
function drawSensors(k) {
  const X = map.x, Y = map.y, S = map.src, D = map.dst;
  const charted = Object.keys(state.live.sensors);
  ctx.strokeStyle = "#39d0d8"; ctx.lineWidth = 2 * k;
  for (const i of state.live.sensor_links) {
    const [sx, sy] = toScreen((X[S[i]] + X[D[i]]) / 2, (Y[S[i]] + Y[D[i]]) / 2);
    ctx.beginPath(); ctx.arc(sx, sy, 5 * k, 0, 2 * Math.PI); ctx.stroke();
    const n = charted.indexOf(String(i));
    if (n >= 0) { ctx.fillStyle = "#39d0d8"; ctx.fillText(`S${n + 1}`, sx + 7 * k, sy + 4 * k); }
  }
}

// ------------------------------------------------------------------ panels
function table(el, rows) {
  el.replaceChildren(...rows.map(cells => {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (Array.isArray(c)) { td.textContent = c[0]; td.className = c[1]; } else td.textContent = c;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function panels() {
  const s = state;
  $("clock").textContent = s.clock;
  $("pace").textContent = s.error ? s.error : s.finished ? "finished" : s.paused ? "paused" : `${s.speed}× real time`;
  if (document.activeElement !== $("speed")) $("speed").value = s.speed;
  $("replay").max = String(Math.max(0, (s.recorded || 0) - 1));
  const rows = [["vehicles on the road", [fmt(s.traffic.on_network), "n"]], ["waiting to enter", [fmt(s.traffic.waiting), "n"]],
    ["stranded (waiting for a route)", [fmt(s.traffic.stranded), s.traffic.stranded ? "n late" : "n"]],
    ["arrived", [fmt(s.traffic.arrived), "n"]]];
  for (const k of KPI_SHOWN) if (k in s.kpis) { const [label, unit] = kpiLabel(k); rows.push([label, [fmt(s.kpis[k], 1) + " " + unit, "n"]]); }
  if (s.evacuation) rows.push(["ordered to leave, safe", [`${fmt(s.evacuation.safe)} of ${fmt(s.evacuation.ordered)} (${fmt(100 * s.evacuation.safe / Math.max(1, s.evacuation.ordered))} %)`, "n"]]);
  table($("kpis"), rows);
  table($("response"), [["type", "n", "p50 s", "p90 s", "target s"]].concat(Object.entries(s.response || {}).map(([t, r]) =>
    [t, [r.n, "n"], [fmt(r.p50), "n"], [fmt(r.p90), r.target !== null && r.p90 !== null && r.p90 > r.target ? "n late" : "n ok"], [fmt(r.target), "n"]])));
  table($("units"), Object.entries(s.available || {}).map(([k, a]) => [k, [`${a[0]} of ${a[1]} available`, a[0] ? "n" : "n late"]]));
  table($("hosp"), Object.entries(s.hospitals || {}).map(([h, o]) => [h, [`${o[0]} / ${o[1]} beds`, o[0] >= o[1] ? "n late" : "n"]]));
  const emergency = "units" in s; // panels of the emergency services only where there are some
  for (const id of ["response", "units", "hosp"]) $(id).closest(".panel").hidden = !emergency;
  $("forks").closest(".panel").hidden = !(s.forks && s.forks.length);
  $("logbox").hidden = !emergency && !(s.log && s.log.length);
  $("lg-em").hidden = !emergency; $("lg-sensor").hidden = !s.live; $("lg-evac").hidden = !(map.evacuation || s.evacuation);
  document.body.classList.toggle("nolog", $("logbox").hidden);
  const tbody = $("log").querySelector("tbody");
  const shown = (s.log || []).slice(-100).reverse();
  table(tbody, shown.map(r => [r.clock, r.event, `${r.incident} ${r.incident_type}`.trim(), r.unit, String(r.detail).slice(0, 80)]));
  $("forks").replaceChildren(...(s.forks || []).map(forkView));
  livePanel(s);
  for (const id of ["incmode", "closemode", "reopenmode", "stout", "stin", "evac"]) if (s.live) $(id).disabled = true;
  for (const id of ["incmode", "inctype", "stout", "stin", "station"]) if (!("units" in s)) $(id).disabled = true;
  for (const id of ["evac", "zone"]) if (!map.evacuation) $(id).disabled = true;
  const st = $("station");
  const names = Object.keys(s.stations || {});
  if (st.options.length !== names.length) st.replaceChildren(...names.map(n => new Option(n, n)));
}

function forkView(f) {
  const div = document.createElement("div");
  const head = document.createElement("div");
  head.textContent = `fork ${f.id} from ${f.from}, ${f.hours} h (${f.who}): ${f.status}`;
  div.appendChild(head);
  if (f.results && f.results.length) {
    const t = document.createElement("table");
    const keys = ["h_trips_completed", "h_mean_travel_time_s", "h_vehicle_hours", "h_mean_network_speed_kmh"];
    table(t, [["", ...f.results.map(r => r.name)]].concat(keys.map(k => [kpiLabel(k).filter(Boolean).join(", "), ...f.results.map(r => [fmt(r.kpis[k], 1), "n"])])));
    div.appendChild(t);
  }
  return div;
}

// ------------------------------------------------------------------ state feed
function applyDelta(d) {
  if (!state || d.base !== state.seq) return false;
  for (const [k, v] of Object.entries(d)) {
    if (k === "delta" || k === "base") continue;
    if (v && typeof v === "object" && "set" in v && "drop" in v) {
      const sec = Object.assign({}, state[k] || {});
      for (const g of v.drop) delete sec[g];
      Object.assign(sec, v.set); state[k] = sec;
    } else if (k === "levels") {
      for (let j = 0; j < v.idx.length; j++) state.levels[v.idx[j]] = v.val[j];
    } else if (k === "log") {
      state.log = state.log.concat(v).slice(-200);
    } else state[k] = v;
  }
  return true;
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws` + (token ? `?token=${encodeURIComponent(token)}` : ""));
  ws.onopen = () => { $("conn").textContent = "live"; $("conn").className = "good"; };
  ws.onmessage = ev => {
    const msg = JSON.parse(ev.data);
    if (msg.delta) { if (!applyDelta(msg)) { ws.close(); return; } } else state = msg;
    if (msg.you) setRole(msg.you);
    document.body.dataset.seq = String(state.seq);
    document.body.dataset.t = String(state.t);
    panels(); requestDraw();
  };
  ws.onclose = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "bad"; setTimeout(connect, 1000); };
}

function setRole(you) {
  operator = you.role === "operator";
  $("who").textContent = `${you.name} (${you.role})`;
  document.body.dataset.role = you.role;
}

// ------------------------------------------------------------------ controls
async function control(body) {
  try {
    const r = await fetch("api/control", { method: "POST", headers: Object.assign({ "Content-Type": "application/json" }, headers), body: JSON.stringify(body) });
    const out = await r.json();
    say(r.ok ? out.outcome : `refused (${r.status}): ${out.error}`);
    return r.ok;
  } catch (e) { say("could not reach the server"); return false; }
}

function setMode(m, label) {
  mode = mode === m ? null : m;
  for (const id of ["incmode", "closemode", "reopenmode"]) $(id).classList.toggle("on", mode && id.startsWith(mode));
  $("mode").style.display = mode ? "block" : "none";
  $("mode").textContent = mode ? label : "";
  canvas.style.cursor = mode ? "crosshair" : "grab";
}

function nearestLink(x, y) {
  let best = -1, bd = Infinity;
  const X = map.x, Y = map.y, S = map.src, D = map.dst;
  for (let i = 0; i < map.n_links; i++) {
    const ax = X[S[i]], ay = Y[S[i]], bx = X[D[i]], by = Y[D[i]];
    const dx = bx - ax, dy = by - ay, L = dx * dx + dy * dy;
    const t = L > 0 ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / L)) : 0;
    const ex = ax + t * dx - x, ey = ay + t * dy - y, d = ex * ex + ey * ey;
    if (d < bd) { bd = d; best = i; }
  }
  return best;
}

let selectedLinks = [];
const reverse = new Map(); // link -> the link the other way along the same road
function onClick(e) {
  const [x, y] = eventWorld(e);
  if (mode === "inc") { control({ action: "incident", type: $("inctype").value, x: x, y: y }); setMode(null); return; }
  const link = nearestLink(x, y);
  if (mode === "close") { control({ action: "close_road", link: link }); setMode(null); return; }
  if (mode === "reopen") { control({ action: "reopen_road", link: link }); setMode(null); return; }
  selectedLinks = [link];
  describe(e, $("details"), true);
}

// ------------------------------------------------------------------ hover / click details
// what is under the pointer: an incident, a unit, a station, or the nearest link (within 10 px)
function hitTest(e) {
  const [x, y] = eventWorld(e), r = 10 * devicePixelRatio / view.s, r2 = r * r;
  const near = (px, py) => (px - x) * (px - x) + (py - y) * (py - y) <= r2;
  if (state) {
    for (const [id, inc] of Object.entries(state.incidents || {})) if (near(inc.x, inc.y)) return { kind: "incident", id: id, v: inc };
    for (const [id, u] of Object.entries(state.units || {})) if (near(u[0], u[1])) return { kind: "unit", id: id, v: u };
    for (const [id, st] of Object.entries(state.stations || {})) if (near(st.x, st.y)) return { kind: "station", id: id, v: st };
  }
  const link = nearestLink(x, y);
  if (link < 0) return null;
  const X = map.x, Y = map.y, ax = X[map.src[link]], ay = Y[map.src[link]], bx = X[map.dst[link]], by = Y[map.dst[link]];
  const dx = bx - ax, dy = by - ay, L = dx * dx + dy * dy;
  const t = L > 0 ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / L)) : 0;
  return near(ax + t * dx, ay + t * dy) ? { kind: "link", id: link } : null;
}

const linkCache = new Map();
async function linkInfo(i) {
  const c = linkCache.get(i);
  if (c && performance.now() - c.at < 1000) return c.v;
  const r = await fetch(`api/link?i=${i}`, { headers: headers });
  if (!r.ok) return null;
  const v = await r.json();
  linkCache.set(i, { at: performance.now(), v: v });
  if (linkCache.size > 500) linkCache.clear();
  return v;
}

function linkText(d) {
  const dx = map.x[map.dst[d.link]] - map.x[map.src[d.link]], dy = map.y[map.dst[d.link]] - map.y[map.src[d.link]];
  const dir = ["east", "north", "west", "south"][Math.round(Math.atan2(dy, dx) / (Math.PI / 2) + 4) % 4];
  const lines = [`${d.name || "(unnamed road)"} ${dir}bound — link ${d.link}, ${d.kind}, ${d.lanes} lane(s), ${fmt(d.length_m)} m`];
  lines.push(d.closed ? "CLOSED" : `speed ${fmt(d.speed_kmh)} of ${fmt(d.free_kmh)} km/h free flow (${fmt(100 * d.speed_kmh / d.free_kmh)} %)`);
  lines.push(`v/c ${d.vc === null ? "– (nothing recorded yet)" : fmt(d.vc, 2)} · ${fmt(d.vehicles)} vehicles on it`);
  for (const c of d.changes) lines.push(`${c.closed ? "closed" : "restricted"} by ${c.source}` + (c.closed ? "" : ` (capacity ×${c.capacity_factor}, speed ×${c.speed_factor})`));
  if (state && state.live && state.live.sensor_links.includes(d.link)) lines.push("sensor link");
  return lines.join("\n");
}

function hitText(h) {
  if (h.kind === "incident") {
    const v = h.v;
    return `incident #${h.id}: ${v.type}, severity ${v.severity}\nstage ${v.stage.replaceAll("_", " ")} · ${v.units} unit(s)\n` +
      `occurred ${v.since} · reported ${v.reported || "–"} · dispatched ${v.dispatched || "–"} · on scene ${v.on_scene || "–"}` + (v.notes ? `\n${v.notes}` : "");
  }
  if (h.kind === "unit") return `unit ${h.id}: ${h.v[2]}, ${h.v[3].replaceAll("_", " ")}` + (h.v[4] !== null && h.v[4] !== undefined ? `\nincident #${h.v[4]}` : "");
  const v = h.v;
  return `station ${h.id}: ${v.kind}` + (v.removed ? ", removed" : v.in_service ? ", in service" : ", out of service") + (v.added ? " (new)" : "");
}

async function describe(e, box, sticky) {
  const h = hitTest(e);
  if (!h) { if (!sticky) box.style.display = "none"; return; }
  let text;
  if (h.kind === "link") { // both directions of a two-way road (drawn one over the other)
    const ids = [h.id].concat(reverse.has(h.id) ? [reverse.get(h.id)] : []).sort((a, b) => a - b);
    const ds = await Promise.all(ids.map(linkInfo));
    text = ds.map((d, j) => (d ? linkText(d) : `link ${ids[j]}`)).join("\n\n");
  } else text = hitText(h);
  box.textContent = text; box.style.display = "block";
  box.dataset.kind = h.kind; box.dataset.id = String(h.id);
  if (!sticky) {
    const r = canvas.parentElement.getBoundingClientRect();
    box.style.left = `${Math.min(e.clientX - r.left + 14, r.width - 340)}px`; box.style.top = `${e.clientY - r.top + 14}px`;
  }
}

let hoverPending = null;
function onHover(e) {
  if (hoverPending) { hoverPending = e; return; }
  hoverPending = e;
  setTimeout(() => { const ev = hoverPending; hoverPending = null; describe(ev, $("tip"), false); }, 80);
}

function wire() {
  $("pause").onclick = () => control({ action: "pause" });
  $("resume").onclick = () => control({ action: "resume" });
  $("setspeed").onclick = () => control({ action: "speed", value: Number($("speed").value) });
  $("incmode").onclick = () => setMode("inc", "click the map to place the incident");
  $("closemode").onclick = () => setMode("close", "click a road to close it");
  $("reopenmode").onclick = () => setMode("reopen", "click a closed road to reopen it");
  $("stout").onclick = () => control({ action: "station", station: $("station").value, in_service: false });
  $("stin").onclick = () => control({ action: "station", station: $("station").value, in_service: true });
  $("evac").onclick = () => control({ action: "evacuate", zones: [$("zone").value] });
  $("fork").onclick = () => control({ action: "fork", hours: Number($("forkh").value), close_links: selectedLinks });
  $("replay").oninput = async () => {
    const r = await fetch(`api/replay?i=${$("replay").value}`, { headers: headers });
    if (!r.ok) { say(`replay: ${r.status}`); return; }
    replay = await r.json();
    $("replaylabel").textContent = `${replay.clock} (${replay.on_network} vehicles)`;
    document.body.dataset.replay = String(replay.index);
    requestDraw();
  };
  $("live").onclick = () => { replay = null; $("replaylabel").textContent = "live"; delete document.body.dataset.replay; requestDraw(); };
  let drag = null;
  canvas.addEventListener("mousedown", e => { drag = { x: e.clientX, y: e.clientY, moved: false }; });
  window.addEventListener("mousemove", e => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (drag.moved) {
      view.cx -= dx * devicePixelRatio / view.s; view.cy += dy * devicePixelRatio / view.s;
      drag.x = e.clientX; drag.y = e.clientY; requestDraw();
    }
  });
  canvas.addEventListener("mousemove", e => { if (!drag || !drag.moved) onHover(e); });
  canvas.addEventListener("mouseleave", () => { $("tip").style.display = "none"; });
  window.addEventListener("mouseup", e => { if (drag && !drag.moved && e.target === canvas) onClick(e); drag = null; });
  canvas.addEventListener("wheel", e => {
    e.preventDefault();
    const [wx, wy] = eventWorld(e), f = e.deltaY < 0 ? 1.2 : 1 / 1.2;
    view.s *= f; view.cx = wx - (wx - view.cx) / f; view.cy = wy - (wy - view.cy) / f; requestDraw();
  }, { passive: false });
  new ResizeObserver(() => { fit(); requestDraw(); }).observe(canvas); // window or panels (the log hides)
}

async function main() {
  const r = await fetch("api/map", { headers: headers });
  if (!r.ok) { $("conn").textContent = `not allowed (${r.status})`; return; }
  map = await r.json();
  $("title").textContent = `${map.scenario} — ${map.city}`;
  $("inctype").replaceChildren(...map.incident_types.map(t => new Option(t, t)));
  $("zone").replaceChildren(...map.zones.map(z => new Option(z.name, z.name)));
  canvas.dataset.links = String(map.n_links);
  const ends = new Map();
  for (let i = 0; i < map.n_links; i++) ends.set(`${map.src[i]},${map.dst[i]}`, i);
  for (let i = 0; i < map.n_links; i++) { const j = ends.get(`${map.dst[i]},${map.src[i]}`); if (j !== undefined) reverse.set(i, j); }
  fit(); wire(); requestDraw(); connect();
}

main();
