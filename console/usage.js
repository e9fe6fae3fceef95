// usage.js - the tenant's own usage: tokens and requests per day and per
// deployment over a date range, rate-limit headroom right now, files and
// batch jobs with their progress.
//
// Sources (all public API, the caller's key): GET /v1/usage?since=&until=
// &by=day and by=deployment (the store's usage records, counts only; both
// dates inclusive); the x-ratelimit-* headers of that same answer (the
// window of the default deployment, nothing counted); GET /v1/files and
// GET /v1/batches. An
// admin key without a tenant has no usage of its own: the page then
// shows every tenant's through GET /admin/usage.
import { call, el, fmt, notice, rateLimits, ApiError } from './api.js';
import { timeChart, barList, progress, autosize } from './charts.js';

let ui = {};
let charts = [];

const day = (d) => d.toISOString().slice(0, 10);

function stat(label, id) {
  const v = el('div', { class: 'stat-value', 'data-testid': id, text: '–' });
  return [el('div', { class: 'stat' }, el('div', { class: 'stat-label', text: label }), v), v];
}

export function mount(sec) {
  const today = new Date();
  const from = new Date(today.getTime() - 29 * 86400e3);
  ui.from = el('input', { type: 'date', id: 'us-from', value: day(from) });
  ui.to = el('input', { type: 'date', id: 'us-to', value: day(today) });
  ui.msg = el('div', { role: 'status' });
  const [sReq, vReq] = stat('Requests', 'total-requests');
  const [sPrompt, vPrompt] = stat('Prompt tokens', 'total-prompt');
  const [sCached, vCached] = stat('Cached tokens', 'total-cached');
  const [sCompl, vCompl] = stat('Completion tokens', 'total-completion');
  const [sTotal, vTotal] = stat('Total tokens', 'total-tokens');
  ui.v = { vReq, vPrompt, vCached, vCompl, vTotal };
  ui.tokChart = el('div', { class: 'chart', 'data-testid': 'chart-tokens' });
  ui.reqChart = el('div', { class: 'chart', 'data-testid': 'chart-requests' });
  ui.depBars = el('div', { 'data-testid': 'by-deployment' });
  ui.limits = el('div', { 'data-testid': 'ratelimits' });
  ui.files = el('div', { class: 'tablewrap' });
  ui.batches = el('div', { class: 'tablewrap' });
  sec.replaceChildren(
    el('h1', { id: 'h-usage', text: 'Usage' }),
    el('form', { class: 'range row', 'aria-label': 'Date range', onsubmit: (e) => { e.preventDefault(); refresh(); } },
      el('div', { class: 'field inline' }, el('label', { for: 'us-from', text: 'From' }), ui.from),
      el('div', { class: 'field inline' }, el('label', { for: 'us-to', text: 'To' }), ui.to),
      el('button', { type: 'submit', class: 'primary', text: 'Update' })),
    ui.msg,
    el('div', { class: 'stats' }, sReq, sPrompt, sCached, sCompl, sTotal),
    el('div', { class: 'cards' },
      el('section', { class: 'card wide', 'aria-labelledby': 'us-h-tok' }, el('h2', { id: 'us-h-tok', text: 'Tokens per day' }), ui.tokChart),
      el('section', { class: 'card', 'aria-labelledby': 'us-h-req' }, el('h2', { id: 'us-h-req', text: 'Requests per day' }), ui.reqChart),
      el('section', { class: 'card', 'aria-labelledby': 'us-h-dep' }, el('h2', { id: 'us-h-dep', text: 'Tokens per deployment' }), ui.depBars),
      el('section', { class: 'card', 'aria-labelledby': 'us-h-rl' }, el('h2', { id: 'us-h-rl', text: 'Rate-limit headroom now' }), ui.limits),
      el('section', { class: 'card wide', 'aria-labelledby': 'us-h-files' }, el('h2', { id: 'us-h-files', text: 'Files' }), ui.files),
      el('section', { class: 'card wide', 'aria-labelledby': 'us-h-batches' }, el('h2', { id: 'us-h-batches', text: 'Batch jobs' }), ui.batches)));
  autosize(() => charts);
}

export function show() { refresh(); }
export function hide() {}

async function usage(by) {
  const q = `since=${encodeURIComponent(ui.from.value)}&until=${encodeURIComponent(ui.to.value)}&by=${by}`;
  try {
    return await call(`/v1/usage?${q}`);
  } catch (e) {
    // An admin key without a tenant: everyone's usage.
    if (e instanceof ApiError && e.status === 404 && e.body?.error?.code === 'tenant_not_found') {
      const r = await call(`/admin/usage?${q}`);
      r.all = true;
      return r;
    }
    throw e;
  }
}

async function refresh() {
  notice(ui.msg, '');
  const from = ui.from.value;
  const to = ui.to.value;
  if (!from || !to || from > to) { notice(ui.msg, 'Pick a start date on or before the end date.', 'error'); return; }
  let byDay;
  let byDep;
  try {
    [byDay, byDep] = await Promise.all([usage('day'), usage('deployment')]);
  } catch (e) {
    notice(ui.msg, e instanceof ApiError && e.status === 401 ? 'Type a tenant API key above to see its usage.' : `Cannot read usage: ${e.message}`, 'error');
    return;
  }
  if (byDay.all) notice(ui.msg, 'This admin key belongs to no tenant: showing every tenant’s usage.');
  const rows = (byDay.json?.data || []).filter((r) => r.group >= from && r.group <= to);
  const sum = (k) => rows.reduce((a, r) => a + (r[k] || 0), 0);
  ui.v.vReq.textContent = fmt.int(sum('requests'));
  ui.v.vPrompt.textContent = fmt.int(sum('prompt_tokens'));
  ui.v.vCached.textContent = fmt.int(sum('cached_tokens'));
  ui.v.vCompl.textContent = fmt.int(sum('completion_tokens'));
  ui.v.vTotal.textContent = fmt.int(sum('total_tokens'));
  // One point per day of the range, zero where nothing was used.
  const byGroup = new Map(rows.map((r) => [r.group, r]));
  const xs = [];
  const prompt = [];
  const compl = [];
  const reqs = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86400e3) {
    const r = byGroup.get(day(new Date(t)));
    xs.push(t / 1000);
    prompt.push(r ? r.prompt_tokens : 0);
    compl.push(r ? r.completion_tokens : 0);
    reqs.push(r ? r.requests : 0);
  }
  // Charts draw once the page is visible (they need its width).
  requestAnimationFrame(() => {
    charts.forEach(([u]) => u?.destroy());
    charts = [
      [timeChart(ui.tokChart, xs, [{ label: 'prompt', values: prompt }, { label: 'completion', values: compl }], { bars: xs.length <= 62 }), ui.tokChart],
      [timeChart(ui.reqChart, xs, [{ label: 'requests', values: reqs }], { bars: xs.length <= 62 }), ui.reqChart],
    ];
  });
  barList(ui.depBars, (byDep.json?.data || []).map((r) => ({
    label: r.group, value: r.total_tokens, sub: `${fmt.int(r.requests)} request${r.requests === 1 ? '' : 's'} · ${fmt.int(r.cached_tokens)} cached`,
  })).sort((a, b) => b.value - a.value), ' tokens');
  showLimits(rateLimits(byDay.headers));
  loadFiles();
  loadBatches();
}

function showLimits(rl) {
  const rows = [];
  if (rl.limitRequests) rows.push({ label: 'Requests / min', rem: rl.remainingRequests, lim: rl.limitRequests, reset: rl.resetRequests });
  if (rl.limitTokens) rows.push({ label: 'Tokens / min', rem: rl.remainingTokens, lim: rl.limitTokens, reset: rl.resetTokens });
  if (!rows.length) { ui.limits.replaceChildren(el('p', { class: 'empty', text: 'No rate limit on this key.' })); return; }
  ui.limits.replaceChildren(...rows.map((r) => el('div', { class: 'limit' },
    el('div', { class: 'limit-label', text: r.label }),
    progress(r.rem, r.lim, `${r.label} remaining`),
    el('small', { class: 'hint', text: `remaining; window resets in ${r.reset || '0s'}` }))));
}

function table(headers, rows, empty) {
  if (!rows.length) return el('p', { class: 'empty', text: empty });
  return el('table', {}, el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c))))));
}

async function loadFiles() {
  try {
    const { json } = await call('/v1/files');
    ui.files.replaceChildren(table(['File', 'Name', 'Purpose', 'Size', 'Created'], (json?.data || []).map((f) =>
      [el('code', { text: f.id }), f.filename, f.purpose, fmt.bytes(f.bytes), fmt.date(f.created_at * 1000)]), 'No files.'));
  } catch (e) {
    ui.files.replaceChildren(el('p', { class: 'empty', text: `Files unavailable (${e.message}).` }));
  }
}

async function loadBatches() {
  try {
    const { json } = await call('/v1/batches');
    ui.batches.replaceChildren(table(['Batch', 'Status', 'Progress', 'Failed', 'Created'], (json?.data || []).map((b) => {
      const rc = b.request_counts || { total: 0, completed: 0, failed: 0 };
      return [el('code', { text: b.id }), el('span', { class: `badge s-${b.status}`, text: b.status }),
        progress(rc.completed + rc.failed, rc.total, `Batch ${b.id} progress`), fmt.int(rc.failed), fmt.date(b.created_at * 1000)];
    }), 'No batch jobs.'));
  } catch (e) {
    ui.batches.replaceChildren(el('p', { class: 'empty', text: `Batches unavailable (${e.message}).` }));
  }
}
