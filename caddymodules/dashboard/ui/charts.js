// @ts-check
// Time-series charts drawn with uPlot (vendor/uplot, MIT, v1.6.32): a
// canvas with real time axes over the chosen span, readable axis text,
// units picked from the data, a hover legend with values, and a dashed
// limit line. uPlot styles elements through the CSSOM only, which the
// page's strict CSP allows. uPlot itself is a classic script (a global).
import { el } from "./app.js";
/** @returns {any} uPlot's constructor (vendor/uplot, a global). */
const uPlotClass = () => /** @type {any} */ (window).uPlot;

/** Colours of the current theme, read from the CSS tokens. */
function chartColors() {
  const cs = getComputedStyle(document.documentElement);
  const v = (n) => cs.getPropertyValue(n).trim();
  return { fg: v("--muted"), grid: v("--chart-grid"), s: [v("--chart-1"), v("--chart-2")], limit: v("--chart-limit") };
}

/** @param {number} n */
export function fmtBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 || Number.isInteger(n) ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}
/** @param {number} n */
export const fmtPct = (n) => `${n >= 10 || Number.isInteger(n) ? Math.round(n) : n.toFixed(1)}%`;

/**
 * byteTicks picks byte-sized ticks (powers of 1024 times 1, 2, 5) so no
 * two ticks print the same label.
 * @param {number} max
 */
function byteSplits(max) {
  if (max <= 0) return [0, 1];
  let unit = 1;
  while (max / unit >= 1024) unit *= 1024;
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500];
  const step = (steps.find((s) => (max / unit) / s <= 5) || 1000) * unit;
  const out = [];
  for (let v = 0; v <= max + step * 0.001; v += step) out.push(v);
  return out;
}

/** Active charts, redrawn when the theme or the width changes. @type {Set<any>} */
const liveCharts = new Set();

/**
 * timeChart draws series over [from, to] (ms). kind "bytes" or "pct" picks
 * the units; limit draws a dashed line at that value.
 * @param {{title: string, sub?: string, from: number, to: number, times: number[], series: {name: string, values: number[]}[], kind: "bytes"|"pct", limit?: {value: number, label: string}|null}} o
 */
export function timeChart(o) {
  const box = el("div", { className: "chart", attrs: { role: "img", "aria-label": `${o.title} chart` } });
  const fig = el("figure", { className: "chart-box" }, el("figcaption", {}, el("span", { textContent: o.title }), o.sub ? el("span", { className: "muted", textContent: o.sub }) : ""), box);
  const fmt = o.kind === "bytes" ? fmtBytes : fmtPct;
  const peak = Math.max(0, ...o.series.flatMap((s) => s.values), o.limit ? o.limit.value : 0);
  const top = o.kind === "pct" ? Math.max(peak * 1.15, 1) : Math.max(peak * 1.15, 1024);
  const build = () => {
    const c = chartColors();
    const axis = { stroke: c.fg, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 }, font: "12px system-ui, sans-serif" };
    const data = [o.times.map((t) => t / 1000), ...o.series.map((s) => s.values)];
    const series = [{ label: "Time", value: (_u, v) => v == null ? "—" : new Date(v * 1000).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) },
      ...o.series.map((s, i) => ({ label: s.name, stroke: c.s[i % 2], width: 2, fill: i === 0 ? c.s[0] + "22" : undefined, points: { show: o.times.length < 3, size: 6 }, value: (_u, v) => v == null ? "—" : fmt(v) }))];
    const width = Math.max(260, box.clientWidth || 400);
    const opts = {
      width, height: 210, series, legend: { show: true, live: true },
      cursor: { points: { size: 7 }, drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => [o.from / 1000, o.to / 1000] }, y: { range: () => [0, top] } },
      axes: [
        Object.assign({}, axis, { space: 70 }),
        Object.assign({}, axis, { size: 62, values: (_u, vals) => vals.map(fmt), splits: o.kind === "bytes" ? () => byteSplits(top) : undefined }),
      ],
      hooks: {
        draw: [(u) => {
          if (!o.limit) return;
          const y = Math.round(u.valToPos(o.limit.value, "y", true));
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = c.limit; ctx.lineWidth = 1.5 * devicePixelRatio; ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
          ctx.fillStyle = c.limit; ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`; ctx.textAlign = "right";
          ctx.fillText(`${o.limit.label} ${fmt(o.limit.value)}`, u.bbox.left + u.bbox.width - 4, y - 5 * devicePixelRatio);
          ctx.restore();
        }],
      },
    };
    box.replaceChildren();
    return new (uPlotClass())(opts, data, box);
  };
  const entry = { box, build, plot: null };
  // Drawn once in the page (its width is known then).
  requestAnimationFrame(() => { entry.plot = build(); liveCharts.add(entry); });
  return fig;
}

/** dropCharts forgets charts no longer in the page. */
export function dropCharts() {
  for (const c of liveCharts) if (!c.box.isConnected) { if (c.plot) c.plot.destroy(); liveCharts.delete(c); }
}

function redrawCharts() {
  dropCharts();
  for (const c of liveCharts) { if (c.plot) c.plot.destroy(); c.plot = c.build(); }
}

document.addEventListener("themechange", () => { if (uPlotClass()) redrawCharts(); });
let resizeTimer = 0;
window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = window.setTimeout(redrawCharts, 150); });

/**
 * barList draws one horizontal bar per row (team usage by app).
 * @param {string} title @param {{name: string, value: number}[]} rows @param {(n: number) => string} fmt
 */
export function barList(title, rows, fmt) {
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  return el("figure", { className: "chart-box" }, el("figcaption", { textContent: title }),
    el("div", { className: "bars", attrs: { role: "list" } }, ...rows.map((r) => {
      const fill = el("div", { className: "bar-fill" });
      fill.style.width = `${Math.max(r.value > 0 ? 1 : 0, (r.value / max) * 100)}%`;
      return el("div", { className: "bar-row", attrs: { role: "listitem" } }, el("span", { className: "name", textContent: r.name }),
        el("div", { className: "bar-track", attrs: { "aria-hidden": "true" } }, fill), el("span", { className: "val", textContent: fmt(r.value) }));
    })));
}
