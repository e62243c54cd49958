// Shadow mode panel of the live operations picture: the feed's counters and lag, the
// demand factors with their spread, and observed against estimated sensor flows.
// Loaded before ops.js (which may use its formatClock); uses no framework.
"use strict";

// Clock text "HH:MM" of seconds after midnight, by the project's one rule (basics.clock.format_clock):
// round to the whole second (half to even, as Python's round), then show the minute that has begun.
function formatClock(seconds) {
  let r = Math.round(seconds);
  if (Math.abs(seconds % 1) === 0.5 && r % 2 !== 0) r -= 1;
  const s = ((r % 86400) + 86400) % 86400;
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60);
  return `${String(hh).padStart(2, "0")}:${String(mm).padStart(2, "0")}`;
}

function chartBox(cv) {
  const r = cv.getBoundingClientRect();
  cv.width = Math.max(1, Math.round(r.width * devicePixelRatio));
  cv.height = Math.max(1, Math.round(r.height * devicePixelRatio));
  const c = cv.getContext("2d");
  c.fillStyle = "#0d1014"; c.fillRect(0, 0, cv.width, cv.height);
  return c;
}

// y axis with 0 and a round top value; returns the top
function yAxis(c, cv, top, unit, pad) {
  const k = devicePixelRatio;
  c.font = `${10 * k}px system-ui`; c.fillStyle = "#8b949e"; c.strokeStyle = "#2c333c"; c.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const y = cv.height - pad.b - f * (cv.height - pad.b - pad.t);
    c.beginPath(); c.moveTo(pad.l, y); c.lineTo(cv.width - pad.r, y); c.stroke();
    c.fillText(`${Math.round(f * top)}${f === 1 ? " " + unit : ""}`, 2 * k, y + 3 * k);
  }
}

function niceTop(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// the demand factors: one bar per zone (mean) with its ± sd whisker, and 1 (the scenario's demand) marked
function drawDemand(cv, zones) {
  const c = chartBox(cv), k = devicePixelRatio, pad = { l: 30 * k, r: 4 * k, t: 6 * k, b: 4 * k };
  const top = niceTop(Math.max(1.2, ...zones.map(z => (z[0] || 0) + (z[1] || 0))));
  yAxis(c, cv, top, "", pad);
  const h = cv.height - pad.t - pad.b, w = (cv.width - pad.l - pad.r) / Math.max(1, zones.length);
  const Y = v => cv.height - pad.b - (v / top) * h;
  zones.forEach((z, i) => {
    if (z[0] === null) return;
    const x = pad.l + i * w;
    c.fillStyle = z[0] >= 1 ? "#f0883e" : "#58a6ff";
    c.fillRect(x + 0.15 * w, Y(z[0]), 0.7 * w, Y(0) - Y(z[0]));
    c.strokeStyle = "#e6edf3"; c.lineWidth = k; c.beginPath();
    c.moveTo(x + w / 2, Y(Math.max(0, z[0] - z[1]))); c.lineTo(x + w / 2, Y(z[0] + z[1])); c.stroke();
  });
  c.strokeStyle = "#e6edf3"; c.setLineDash([3 * k, 3 * k]); c.beginPath();
  c.moveTo(pad.l, Y(1)); c.lineTo(cv.width - pad.r, Y(1)); c.stroke(); c.setLineDash([]);
}

// one sensor: the estimate's 90 % band (shaded), its mean (line) and the observations (dots)
function drawSensor(cv, ch, start) {
  const c = chartBox(cv), k = devicePixelRatio, pad = { l: 44 * k, r: 4 * k, t: 6 * k, b: 14 * k };
  const obs = ch.obs.filter(o => o[1] !== null);
  const ts = ch.t.concat(obs.map(o => o[0]));
  if (!ts.length) return;
  const t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1);
  const top = niceTop(Math.max(10, ...ch.flow_hi.map(v => v || 0), ...obs.map(o => o[1])));
  yAxis(c, cv, top, "veh/h", pad);
  const X = t => pad.l + (t - t0) / (t1 - t0) * (cv.width - pad.l - pad.r);
  const Y = v => cv.height - pad.b - (v / top) * (cv.height - pad.t - pad.b);
  if (ch.t.length) {
    c.fillStyle = "#58a6ff40"; c.beginPath();
    ch.t.forEach((t, i) => (i ? c.lineTo(X(t), Y(ch.flow_hi[i] || 0)) : c.moveTo(X(t), Y(ch.flow_hi[i] || 0))));
    for (let i = ch.t.length - 1; i >= 0; i--) c.lineTo(X(ch.t[i]), Y(ch.flow_lo[i] || 0));
    c.closePath(); c.fill();
    c.strokeStyle = "#58a6ff"; c.lineWidth = 2 * k; c.beginPath();
    ch.t.forEach((t, i) => (i ? c.lineTo(X(t), Y(ch.flow[i] || 0)) : c.moveTo(X(t), Y(ch.flow[i] || 0))));
    c.stroke();
  }
  c.fillStyle = "#8b949e"; c.font = `${10 * k}px system-ui`;
  const hhmm = t => formatClock(start + t);
  c.fillText(hhmm(t0), pad.l, cv.height - 1 * k);
  const end = hhmm(t1); c.fillText(end, cv.width - pad.r - c.measureText(end).width, cv.height - 1 * k);
  c.fillStyle = "#f0883e";
  for (const o of obs) { c.beginPath(); c.arc(X(o[0]), Y(o[1]), 2.5 * k, 0, 2 * Math.PI); c.fill(); }
}

function sensorTitle(link, ch) {
  const last = ch.t.length - 1, obs = ch.obs.filter(o => o[1] !== null), o = obs[obs.length - 1];
  const sp = ch.obs.filter(r => r[2] !== null);
  const n = Object.keys(state.live.sensors).indexOf(String(link)) + 1;
  let text = `S${n} ${ch.name} (link ${link}): estimate ${last >= 0 ? fmt(ch.flow[last]) : "–"} veh/h ` +
    `[${last >= 0 ? fmt(ch.flow_lo[last]) : "–"}–${last >= 0 ? fmt(ch.flow_hi[last]) : "–"}], observed ${o ? fmt(o[1]) : "–"}`;
  if (sp.length && last >= 0) text += `; speed ${fmt(sp[sp.length - 1][2])} km/h observed, ${fmt(ch.speed[last])} estimated`;
  return text;
}

function livePanel(s) {
  const box = $("livebox");
  box.hidden = !s.live;
  if (!s.live) return;
  const L = s.live, f = L.feed;
  const lagSim = L.lag_sim_s === null ? "–" : `${L.lag_sim_s > 0 ? "+" : ""}${fmt(L.lag_sim_s)} s`;
  table($("feed"), [
    ["received", [fmt(f.received), "n"], "applied", [fmt(f.applied), "n"]],
    ["rejected", [fmt(f.rejected), f.rejected ? "n late" : "n"], "late", [fmt(f.late), f.late ? "n late" : "n"]],
    ["duplicate", [fmt(f.duplicate), "n"], "waiting", [fmt(f.pending), "n"]],
    ["lag, sim", [lagSim, Math.abs(L.lag_sim_s || 0) > 900 ? "n late" : "n"],
      "lag, wall", [L.lag_wall_s === null ? "–" : `${fmt(L.lag_wall_s, 1)} s`, L.lag_wall_s > 60 ? "n late" : "n"]],
    ["feed clock", [L.feed_clock || "–", "n"], "members", [String(L.members), "n"]],
    ["demand", [L.demand.mean === null ? "–" : `× ${fmt(L.demand.mean, 2)}`, "n"], "feed", [L.exhausted ? "ended" : "open", "n"]],
  ]);
  $("feed").title = "lag, sim: the feed's clock minus the twin's; lag, wall: since the last message arrived";
  drawDemand($("demand"), L.demand.zones);
  const holder = $("sensors");
  const keys = Object.keys(L.sensors);
  if (holder.dataset.keys !== keys.join(",")) {
    holder.replaceChildren(...keys.flatMap(key => {
      const name = document.createElement("div"); name.className = "chartname"; name.id = `sname${key}`;
      const cv = document.createElement("canvas"); cv.className = "chart"; cv.id = `sensor${key}`; cv.height = 90;
      return [name, cv];
    }));
    holder.dataset.keys = keys.join(",");
  }
  for (const key of keys) {
    $(`sname${key}`).textContent = sensorTitle(key, L.sensors[key]);
    drawSensor($(`sensor${key}`), L.sensors[key], L.start_s);
  }
}
