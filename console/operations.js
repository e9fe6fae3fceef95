// operations.js - the operator's page (admin key): server health,
// deployments with their live state, tokens/s and time-to-first-token
// charts, load / replace / remove deployments, tenants and their keys.
//
// Sources: GET /health; GET /admin/deployments (configuration, memory,
// scheduler state); GET /admin/stats, polled every 2 s while the page is
// visible (tokens/s is the change of the generated-token counters between
// two polls over the time between them; TTFT percentiles are estimated
// from the server's histogram since it started); POST /admin/deployments
// (load, or replace the deployment of that name), DELETE
// /admin/deployments/{name}; GET/POST /admin/tenants, DELETE
// /admin/tenants/{name}, POST /admin/keys (the new key is shown once,
// here, and never stored by the page), DELETE /admin/keys/{id}.
import { call, el, fmt, notice, ApiError } from './api.js';
import { timeChart, autosize } from './charts.js';

let ui = {};
let timer = null;
let last = null; // previous /admin/stats sample
const hist = { t: [], tps: [], p50: [], p90: [], p99: [] };
let charts = [];
const KEEP = 90;

export function mount(sec) {
  ui.msg = el('div', { role: 'status' });
  ui.health = el('div', { class: 'health', 'data-testid': 'health' });
  ui.deps = el('div', { class: 'tablewrap', 'data-testid': 'deployments' });
  ui.tpsChart = el('div', { class: 'chart', 'data-testid': 'chart-tps' });
  ui.ttftChart = el('div', { class: 'chart', 'data-testid': 'chart-ttft' });
  ui.cfg = el('textarea', { id: 'op-config', rows: 6, spellcheck: 'false', 'data-testid': 'deploy-config',
    placeholder: '{"name": "chat", "model": "nuage-fast.gguf", "ctx": 2048, "parallel": 4}' });
  ui.depMsg = el('div', { role: 'status' });
  ui.tenants = el('div', { class: 'tablewrap', 'data-testid': 'tenants' });
  ui.tName = el('input', { id: 'op-tname', type: 'text', required: true, pattern: '[A-Za-z0-9._-]{1,63}', 'data-testid': 'tenant-name' });
  ui.tTpm = el('input', { id: 'op-ttpm', type: 'number', min: 0, value: 0 });
  ui.tRpm = el('input', { id: 'op-trpm', type: 'number', min: 0, value: 0 });
  ui.tWeight = el('input', { id: 'op-tweight', type: 'number', min: 0.01, step: 0.01, value: 1 });
  ui.kTenant = el('select', { id: 'op-ktenant', 'data-testid': 'key-tenant' });
  ui.kDeps = el('input', { id: 'op-kdeps', type: 'text', placeholder: 'all' });
  ui.newKey = el('div', { 'aria-live': 'polite' });
  ui.tMsg = el('div', { role: 'status' });
  const f = (id, label, input) => el('div', { class: 'field' }, el('label', { for: id, text: label }), input);
  sec.replaceChildren(
    el('h1', { id: 'h-operations', text: 'Operations' }),
    ui.msg, ui.health,
    el('div', { class: 'cards' },
      el('section', { class: 'card', 'aria-labelledby': 'op-h-tps' }, el('h2', { id: 'op-h-tps', text: 'Generated tokens/s' }), ui.tpsChart),
      el('section', { class: 'card', 'aria-labelledby': 'op-h-ttft' }, el('h2', { id: 'op-h-ttft', text: 'Time to first token (p50 / p90 / p99)' }), ui.ttftChart),
      el('section', { class: 'card wide', 'aria-labelledby': 'op-h-deps' }, el('h2', { id: 'op-h-deps', text: 'Deployments' }), ui.deps,
        el('form', { class: 'deployform', 'aria-label': 'Load or replace a deployment', onsubmit: (e) => { e.preventDefault(); loadDeployment(); } },
          f('op-config', 'Deployment (JSON, as in the configuration file; an existing name is replaced)', ui.cfg),
          el('div', { class: 'row' }, el('button', { type: 'submit', class: 'primary', 'data-testid': 'deploy-submit', text: 'Load / replace' })),
          ui.depMsg)),
      el('section', { class: 'card wide', 'aria-labelledby': 'op-h-ten' }, el('h2', { id: 'op-h-ten', text: 'Tenants and keys' }),
        ui.tMsg, ui.tenants,
        el('div', { class: 'forms2' },
          el('form', { 'aria-label': 'Create a tenant', onsubmit: (e) => { e.preventDefault(); createTenant(); } },
            el('h3', { text: 'New tenant, or new limits' }),
            f('op-tname', 'Name', ui.tName),
            el('div', { class: 'grid3' }, f('op-ttpm', 'Tokens / min (0: no limit)', ui.tTpm), f('op-trpm', 'Requests / min', ui.tRpm), f('op-tweight', 'Weight', ui.tWeight)),
            el('button', { type: 'submit', class: 'primary', 'data-testid': 'tenant-create', text: 'Create / save' })),
          el('form', { 'aria-label': 'Create a key', onsubmit: (e) => { e.preventDefault(); createKey(); } },
            el('h3', { text: 'New API key' }),
            f('op-ktenant', 'Tenant', ui.kTenant),
            f('op-kdeps', 'Deployments (comma-separated; empty: all)', ui.kDeps),
            el('button', { type: 'submit', class: 'primary', 'data-testid': 'key-create', text: 'Create key' }),
            ui.newKey)))));
  autosize(() => charts);
}

export function show() {
  refresh();
  if (!timer) timer = setInterval(poll, 2000);
  poll();
}

export function hide() {
  clearInterval(timer);
  timer = null;
}

async function refresh() {
  notice(ui.msg, '');
  try {
    const r = await fetch('/health', { cache: 'no-store' });
    const j = await r.json().catch(() => ({}));
    ui.health.replaceChildren(el('span', { class: `badge ${r.ok ? 's-completed' : 's-failed'}`, text: j.status || r.status }),
      el('span', { text: ` server ${location.host}${j.version ? ` · nuage ${j.version}` : ''}` }),
      j.metering ? el('span', { text: ` · metering ${typeof j.metering === 'object' ? j.metering.status || 'ok' : j.metering}` }) : null);
  } catch (e) {
    ui.health.replaceChildren(el('span', { class: 'badge s-failed', text: 'unreachable' }));
  }
  await Promise.all([loadDeployments(), loadTenants()]);
}

function adminError(e) {
  if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return 'This page needs an admin key: type it in above.';
  return e.message;
}

// ---- deployments -------------------------------------------------------------

async function loadDeployments() {
  let json;
  try { ({ json } = await call('/admin/deployments')); } catch (e) { notice(ui.msg, adminError(e), 'error'); ui.deps.replaceChildren(); return; }
  const rows = json?.data || [];
  const head = ['Name', 'Kind', 'Model', 'Context', 'KV cache', 'Queue', 'Running', 'Version', ''];
  ui.deps.replaceChildren(el('table', {},
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, ...rows.map((d) => {
      const st = d.stats || {};
      const used = (st.kv_blocks_total || 0) - (st.kv_blocks_free || 0) - (st.kv_blocks_cached || 0);
      const kv = d.stats ? el('span', { class: 'progress' },
        el('progress', { max: Math.max(1, st.kv_blocks_total), value: Math.max(0, used), 'aria-label': `KV blocks used by ${d.id}` }),
        el('span', { text: ` ${used}/${st.kv_blocks_total}${st.kv_blocks_cached ? ` (+${st.kv_blocks_cached} cached)` : ''}` })) : '–';
      return el('tr', { 'data-deployment': d.id },
        el('th', { scope: 'row', text: d.id }), el('td', { text: d.kind }),
        el('td', {}, el('code', { text: d.model || '–' })), el('td', { text: d.meta?.n_ctx ? fmt.int(d.meta.n_ctx) : '–' }),
        el('td', {}, kv), el('td', { text: d.stats ? st.queued : '–' }), el('td', { text: d.stats ? st.running : '–' }),
        el('td', { text: `${d.version || '–'} #${d.instance}` }),
        el('td', { class: 'actions' },
          el('button', { type: 'button', text: 'Replace…', 'aria-label': `Replace ${d.id}`,
            onclick: () => { ui.cfg.value = JSON.stringify(d.config || { name: d.id, model: d.model }, null, 2); ui.cfg.focus(); } }),
          el('button', { type: 'button', class: 'danger', text: 'Remove', 'aria-label': `Remove ${d.id}`, onclick: () => removeDeployment(d.id) })));
    }))));
}

async function loadDeployment() {
  let body;
  try { body = JSON.parse(ui.cfg.value); } catch { notice(ui.depMsg, 'The deployment is not valid JSON.', 'error'); return; }
  notice(ui.depMsg, `Loading ${body.name || 'deployment'}…`);
  try {
    const { status } = await call('/admin/deployments', { method: 'POST', body });
    notice(ui.depMsg, `${body.name}: ${status === 201 ? 'loaded' : 'replaced'}.`, 'ok');
    loadDeployments();
  } catch (e) {
    notice(ui.depMsg, adminError(e), 'error');
  }
}

async function removeDeployment(name) {
  if (!window.confirm(`Remove deployment ${name}? Requests in flight finish first.`)) return;
  try {
    await call(`/admin/deployments/${encodeURIComponent(name)}`, { method: 'DELETE' });
    notice(ui.depMsg, `${name}: removed.`, 'ok');
  } catch (e) {
    notice(ui.depMsg, adminError(e), 'error');
  }
  loadDeployments();
}

// ---- live charts ------------------------------------------------------------

async function poll() {
  let s;
  try { ({ json: s } = await call('/admin/stats')); } catch { return; }
  const gen = (s.deployments || []).reduce((a, d) => a + (d.stats?.generated_tokens || 0), 0);
  const t = s.time / 1000;
  let tps = 0;
  if (last && t > last.t && gen >= last.gen) tps = (gen - last.gen) / (t - last.t);
  last = { t, gen };
  const tt = s.time_to_first_token || {};
  hist.t.push(t); hist.tps.push(tps); hist.p50.push((tt.p50 || 0) * 1000); hist.p90.push((tt.p90 || 0) * 1000); hist.p99.push((tt.p99 || 0) * 1000);
  for (const k of Object.keys(hist)) if (hist[k].length > KEEP) hist[k].shift();
  if (charts.length && charts[0][0]) {
    charts[0][0].setData([hist.t, hist.tps]);
    charts[1][0]?.setData([hist.t, hist.p50, hist.p90, hist.p99]);
  } else {
    charts = [
      [timeChart(ui.tpsChart, hist.t, [{ label: 'tokens/s', values: hist.tps }], { height: 180 }), ui.tpsChart],
      [timeChart(ui.ttftChart, hist.t, [{ label: 'p50', values: hist.p50 }, { label: 'p90', values: hist.p90 }, { label: 'p99', values: hist.p99 }],
        { height: 180, unit: ' ms', minMax: 10 }), ui.ttftChart],
    ];
  }
  ui.tpsChart.dataset.latest = String(tps);
  // The deployments' queue and KV numbers, unless the user is working in
  // that table (a re-render would move the keyboard focus).
  if (!ui.deps.contains(document.activeElement)) loadDeployments();
  ui.ttftChart.dataset.count = String(tt.count || 0);
}

// ---- tenants and keys -----------------------------------------------------------

async function loadTenants() {
  let json;
  try { ({ json } = await call('/admin/tenants')); } catch (e) {
    ui.tenants.replaceChildren(el('p', { class: 'empty', text: e instanceof ApiError && e.status === 404 ? 'This server has no store: no tenants.' : adminError(e) }));
    return;
  }
  const ts = json?.data || [];
  const keep = ui.kTenant.value;
  ui.kTenant.replaceChildren(...ts.map((t) => el('option', { value: t.name, text: t.name })));
  if (keep && ts.some((t) => t.name === keep)) ui.kTenant.value = keep;
  const limit = (n) => (n ? fmt.int(n) : '∞');
  ui.tenants.replaceChildren(ts.length ? el('table', {},
    el('thead', {}, el('tr', {}, ...['Tenant', 'Tokens/min', 'Requests/min', 'Weight', 'Keys', ''].map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, ...ts.map((t) => el('tr', { 'data-tenant': t.name },
      el('th', { scope: 'row', text: t.name }), el('td', { text: limit(t.tpm) }), el('td', { text: limit(t.rpm) }), el('td', { text: t.weight }),
      el('td', {}, el('ul', { class: 'keys' }, ...(t.keys || []).map((k) => el('li', { 'data-key': k.prefix },
        el('code', { text: k.prefix }), ' ',
        el('span', { class: `badge ${k.revoked ? 's-failed' : 's-completed'}`, text: k.revoked ? 'revoked' : 'active' }),
        k.deployments ? el('small', { text: ` ${k.deployments}` }) : null,
        k.revoked ? null : el('button', { type: 'button', class: 'danger small', text: 'Revoke', 'aria-label': `Revoke key ${k.prefix}`, 'data-testid': 'revoke',
          onclick: () => revokeKey(k) }))))),
      el('td', { class: 'actions' },
        el('button', { type: 'button', text: 'Edit…', 'aria-label': `Edit limits of ${t.name}`, onclick: () => editTenant(t) }),
        el('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-label': `Delete tenant ${t.name}`, onclick: () => deleteTenant(t.name) })))))) :
    el('p', { class: 'empty', text: 'No tenants yet.' }));
}

// Fill the tenant form with t's limits: saving it then updates them.
function editTenant(t) {
  ui.tName.value = t.name;
  ui.tTpm.value = t.tpm;
  ui.tRpm.value = t.rpm;
  ui.tWeight.value = t.weight;
  ui.tName.focus();
}

async function createTenant() {
  const body = { name: ui.tName.value.trim(), tpm: Number(ui.tTpm.value || 0), rpm: Number(ui.tRpm.value || 0), weight: Number(ui.tWeight.value || 1) };
  const exists = !!ui.tenants.querySelector(`tr[data-tenant="${CSS.escape(body.name)}"]`);
  try {
    if (exists) {
      const { name, ...limits } = body;
      await call(`/admin/tenants/${encodeURIComponent(name)}`, { method: 'PATCH', body: limits });
      notice(ui.tMsg, `Limits of ${name} saved.`, 'ok');
    } else {
      await call('/admin/tenants', { method: 'POST', body });
      notice(ui.tMsg, `Tenant ${body.name} created.`, 'ok');
    }
    ui.tName.value = '';
    await loadTenants();
    ui.kTenant.value = body.name;
  } catch (e) { notice(ui.tMsg, adminError(e), 'error'); }
}

async function createKey() {
  const body = { tenant: ui.kTenant.value };
  if (ui.kDeps.value.trim()) body.deployments = ui.kDeps.value.trim();
  try {
    const { json } = await call('/admin/keys', { method: 'POST', body });
    const code = el('code', { class: 'secret', 'data-testid': 'new-key', text: json.key });
    ui.newKey.replaceChildren(el('div', { class: 'notice ok' },
      el('p', { text: `New key for ${json.tenant} (${json.prefix}). Copy it now: it is not shown again.` }), code,
      el('button', { type: 'button', class: 'small', text: 'Copy', onclick: () => navigator.clipboard?.writeText(json.key) })));
    loadTenants();
  } catch (e) { notice(ui.newKey, adminError(e), 'error'); }
}

async function revokeKey(k) {
  if (!window.confirm(`Revoke key ${k.prefix}? Requests with it get 401 from now on.`)) return;
  try {
    await call(`/admin/keys/${encodeURIComponent(String(k.id))}`, { method: 'DELETE' });
    notice(ui.tMsg, `Key ${k.prefix} revoked.`, 'ok');
  } catch (e) { notice(ui.tMsg, adminError(e), 'error'); }
  loadTenants();
}

async function deleteTenant(name) {
  if (!window.confirm(`Delete tenant ${name} and revoke its keys? Its usage records stay.`)) return;
  try {
    await call(`/admin/tenants/${encodeURIComponent(name)}`, { method: 'DELETE' });
    notice(ui.tMsg, `Tenant ${name} deleted.`, 'ok');
  } catch (e) { notice(ui.tMsg, adminError(e), 'error'); }
  loadTenants();
}
