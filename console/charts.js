// charts.js - the console's charts: time series with uPlot (vendored,
// see vendor/uPlot.LICENSE) and horizontal bars for categories (plain
// elements, widths set through the CSSOM, which the CSP allows).
//
// Every chart also carries its numbers as text (a caption and, for
// bars, the values beside them) so that they are readable without the
// canvas (screen readers, tests, copy and paste).
import { el, fmt } from './api.js';

const COLORS = ['#2f5bea', '#e8833a', '#1f9d6b', '#c2417b', '#7a5af5', '#8a8f98'];

// A uPlot time-series chart in container c. xs: unix seconds; series:
// [{label, values}]. opts: {bars: true} draws bars (per-day data),
// {height}. Returns the uPlot instance (or null when uPlot is missing).
export function timeChart(c, xs, series, opts = {}) {
  c.replaceChildren();
  if (!window.uPlot) { c.append(el('p', { class: 'notice', text: 'Chart library not loaded.' })); return null; }
  const width = Math.max(260, c.clientWidth || 600);
  const n = series.length;
  // Grouped bars: each series gets its slot beside the others.
  const barPaths = (i) => window.uPlot.paths.bars({ size: [0.7 / n, 40], align: n === 1 ? 0 : i === 0 ? -1 : 1 });
  const pad = opts.bars ? 43200 : 0; // half a day each side: the edge bars are whole
  const xfmt = opts.bars
    ? (d) => `${d.getUTCMonth() + 1}/${d.getUTCDate()}`
    : (d) => d.toLocaleTimeString('en-GB', { hour12: false });
  const u = new window.uPlot({
    width,
    height: opts.height || 220,
    cursor: { drag: { x: false, y: false } },
    legend: { show: true },
    scales: {
      x: { time: true, range: (_u, min, max) => [min - pad, max + pad] },
      y: { range: (_u, min, max) => [0, Math.max(opts.minMax || 1, max * 1.15)] },
    },
    axes: [{ stroke: '#5b6270', grid: { stroke: '#e6e8ee' }, space: 70,
      incrs: opts.bars ? [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400] : [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600],
      values: (_u, v) => v.map((x) => xfmt(new Date(x * 1000))) },
      { stroke: '#5b6270', grid: { stroke: '#e6e8ee' }, size: 60, values: (_u, v) => v.map((x) => fmt.int(x) + (opts.unit || '')) }],
    series: [{ value: (_u, v) => (v === null ? '–' : xfmt(new Date(v * 1000))) }, ...series.map((s, i) => ({
      label: s.label, stroke: COLORS[i % COLORS.length], width: opts.bars ? 0 : 2,
      fill: opts.bars ? `${COLORS[i % COLORS.length]}cc` : n === 1 ? `${COLORS[i % COLORS.length]}22` : undefined,
      paths: opts.bars ? barPaths(i) : undefined, points: { show: !opts.bars && xs.length < 40 },
      value: (_u, v) => (v === null ? '–' : `${fmt.int(Math.round(v * 10) / 10)}${opts.unit || ''}`),
    }))],
  }, [xs, ...series.map((s) => s.values)], c);
  return u;
}

// Keep a chart as wide as its container.
export function autosize(getCharts) {
  let t = null;
  window.addEventListener('resize', () => {
    clearTimeout(t);
    t = setTimeout(() => {
      for (const [u, c] of getCharts()) if (u && c.clientWidth) u.setSize({ width: c.clientWidth, height: u.height });
    }, 100);
  });
}

// Horizontal bars: rows [{label, value, sub?}] in container c.
export function barList(c, rows, unit = '') {
  const max = Math.max(1, ...rows.map((r) => r.value));
  c.replaceChildren(el('ul', { class: 'bars' }, ...rows.map((r, i) => {
    const bar = el('span', { class: 'bar' });
    bar.style.width = `${(100 * r.value) / max}%`;
    bar.style.background = COLORS[i % COLORS.length];
    return el('li', {},
      el('span', { class: 'bar-label', text: r.label }),
      el('span', { class: 'bar-track' }, bar),
      el('span', { class: 'bar-value', text: `${fmt.int(r.value)}${unit}` }),
      r.sub ? el('small', { class: 'bar-sub', text: r.sub }) : null);
  })));
  if (!rows.length) c.replaceChildren(el('p', { class: 'empty', text: 'No data in this range.' }));
}

// A progress bar with its text.
export function progress(done, total, label) {
  const p = el('progress', { max: Math.max(total, 1), value: done, 'aria-label': label });
  return el('span', { class: 'progress' }, p, el('span', { text: ` ${fmt.int(done)} / ${fmt.int(total)}` }));
}
