// playground.js - chat with any deployment: parameters, streamed Markdown
// answers, reasoning, tool calls, per-message usage and timings, "view
// code", conversations kept in this browser.
//
// One request is POST /v1/chat/completions with stream: true and
// stream_options.include_usage, read as server-sent events from fetch's
// body. The answer's deltas are accumulated (content, reasoning_content,
// tool_calls by index) and re-rendered at most once per animation frame.
// Timings are measured here: time to first token from sending to the
// first content or reasoning delta, tokens/s as completion tokens over the
// time from that first delta to the last (over the whole request when the
// deltas arrived in one burst, shown as "overall"). The answering model is the
// chunks' `model` (a router deployment resolves to the model it picked;
// the x-nuage-router header names the router).
//
// Stop aborts the fetch: the connection closes and the server cancels the
// sequence and frees its KV blocks (visible in /metrics as
// nuage_requests_cancelled_total).
//
// Conversations (messages, settings, per-message stats) are kept in
// localStorage under nuage.conversations -- never the API key -- and can
// be exported as JSON.
import { raw, call, el, fmt, ApiError } from './api.js';
import { renderMarkdown } from './markdown.js';

const STORE = 'nuage.conversations';
let root;
let ui = {};
let convs = [];
let cur = null;
let inflight = null; // { controller, msg }
let modelsLoaded = false;

function load() {
  try { convs = JSON.parse(localStorage.getItem(STORE) || '[]'); } catch { convs = []; }
  if (!Array.isArray(convs)) convs = [];
}
function save() {
  try { localStorage.setItem(STORE, JSON.stringify(convs)); } catch { /* full or disabled */ }
}
function newConv() {
  const c = { id: `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, title: 'New chat', created: Date.now(), messages: [] };
  convs.unshift(c);
  cur = c;
  save();
  return c;
}

function field(id, label, input, hint) {
  input.id = id;
  return el('div', { class: 'field' }, el('label', { for: id, text: label }), input,
    hint ? el('small', { class: 'hint', text: hint }) : null);
}

export function mount(sec) {
  root = sec;
  load();
  cur = convs[0] || newConv();
  ui.convList = el('ul', { class: 'convlist', 'aria-label': 'Conversations' });
  ui.deployment = el('select', { 'data-testid': 'deployment' });
  ui.sysRole = el('select', {}, el('option', { value: 'system', text: 'system' }), el('option', { value: 'developer', text: 'developer' }));
  ui.system = el('textarea', { rows: 3, placeholder: 'You are a helpful assistant.' });
  ui.temperature = el('input', { type: 'number', min: 0, max: 2, step: 0.1, placeholder: 'default' });
  ui.topP = el('input', { type: 'number', min: 0, max: 1, step: 0.05, placeholder: 'default' });
  ui.maxTokens = el('input', { type: 'number', min: 1, step: 1, placeholder: 'default', 'data-testid': 'max-tokens' });
  ui.effort = el('select', {}, ...['', 'none', 'low', 'medium', 'high'].map((v) => el('option', { value: v, text: v || 'default' })));
  ui.seed = el('input', { type: 'number', step: 1, placeholder: 'random' });
  ui.stop = el('input', { type: 'text', placeholder: 'comma-separated' });
  ui.format = el('select', {}, el('option', { value: 'text', text: 'text' }), el('option', { value: 'json_object', text: 'JSON mode' }),
    el('option', { value: 'json_schema', text: 'JSON schema' }));
  ui.schema = el('textarea', { rows: 4, placeholder: '{"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"]}' });
  ui.schemaField = field('pg-schema', 'JSON schema', ui.schema);
  ui.schemaField.hidden = true;
  ui.extra = el('textarea', { rows: 2, placeholder: '{"top_k": 40, "ignore_eos": true}', 'data-testid': 'extra', spellcheck: 'false' });
  ui.format.addEventListener('change', () => { ui.schemaField.hidden = ui.format.value !== 'json_schema'; });
  ui.log = el('div', { class: 'chatlog', role: 'log', 'aria-label': 'Conversation', 'data-testid': 'chatlog' });
  ui.input = el('textarea', { id: 'pg-input', rows: 3, placeholder: 'Type a message (Enter sends, Shift+Enter for a new line)', 'data-testid': 'prompt' });
  ui.send = el('button', { type: 'submit', class: 'primary', 'data-testid': 'send', text: 'Send' });
  ui.stopBtn = el('button', { type: 'button', class: 'danger', 'data-testid': 'stop', text: 'Stop', disabled: true, onclick: stopRequest });
  ui.status = el('div', { class: 'pg-status', role: 'status' });
  ui.dialog = buildCodeDialog();

  const settings = el('details', { class: 'settings', open: window.matchMedia('(min-width: 900px)').matches },
    el('summary', { text: 'Parameters' }),
    field('pg-deployment', 'Deployment', ui.deployment),
    field('pg-sysrole', 'Instruction role', ui.sysRole),
    field('pg-system', 'System / developer message', ui.system),
    el('div', { class: 'grid2' },
      field('pg-temperature', 'Temperature', ui.temperature),
      field('pg-top-p', 'Top p', ui.topP),
      field('pg-max-tokens', 'Max tokens', ui.maxTokens),
      field('pg-seed', 'Seed', ui.seed)),
    field('pg-effort', 'Reasoning effort', ui.effort),
    field('pg-stop', 'Stop sequences', ui.stop),
    field('pg-format', 'Response format', ui.format),
    ui.schemaField,
    field('pg-extra', 'Extra body fields (JSON)', ui.extra, 'Merged into the request, e.g. nuage extensions.'));

  const composer = el('form', { class: 'composer', 'aria-label': 'Send a message', onsubmit: (e) => { e.preventDefault(); send(); } },
    el('label', { for: 'pg-input', class: 'sr-only', text: 'Message' }), ui.input,
    el('div', { class: 'row' }, ui.send, ui.stopBtn,
      el('button', { type: 'button', text: 'View code', 'data-testid': 'view-code', onclick: showCode })));
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });

  const side = el('aside', { class: 'convs', 'aria-label': 'Conversations' },
    el('div', { class: 'row' },
      el('button', { type: 'button', text: 'New chat', onclick: () => { if (inflight) return; if (cur.messages.length) newConv(); renderAll(); ui.input.focus(); } }),
      el('button', { type: 'button', text: 'Export JSON', 'data-testid': 'export', onclick: exportJson })),
    ui.convList);

  root.replaceChildren(
    el('h1', { id: 'h-playground', text: 'Playground' }),
    el('div', { class: 'pg' }, side,
      el('div', { class: 'chat' }, ui.log, ui.status, composer),
      settings),
    ui.dialog);
  renderAll();
}

export async function show() {
  try {
    const { json } = await call('/v1/models');
    const keep = ui.deployment.value || cur?.settings?.model;
    ui.deployment.replaceChildren(...(json?.data || []).map((m) =>
      el('option', { value: m.id, text: m.meta?.kind === 'router' ? `${m.id} (router)` : m.id })));
    if (keep && [...ui.deployment.options].some((o) => o.value === keep)) ui.deployment.value = keep;
    modelsLoaded = true;
    ui.status.textContent = '';
  } catch (e) {
    ui.status.textContent = e instanceof ApiError && e.status === 401
      ? 'This server needs an API key: type it in above.' : `Cannot list deployments: ${e.message}`;
  }
}

// ---- the request ---------------------------------------------------------

function num(input) {
  const v = input.value.trim();
  return v === '' ? undefined : Number(v);
}

// The chat completions body for the current conversation (and settings).
function requestBody(messages) {
  const body = { model: ui.deployment.value || undefined, messages: [] };
  if (ui.system.value.trim()) body.messages.push({ role: ui.sysRole.value, content: ui.system.value });
  for (const m of messages) {
    if (m.role === 'assistant') {
      const a = { role: 'assistant', content: m.content || '' };
      if (m.tool_calls?.length) a.tool_calls = m.tool_calls;
      body.messages.push(a);
    } else {
      body.messages.push({ role: m.role, content: m.content });
    }
  }
  const t = num(ui.temperature);
  const p = num(ui.topP);
  const mt = num(ui.maxTokens);
  const seed = num(ui.seed);
  if (t !== undefined) body.temperature = t;
  if (p !== undefined) body.top_p = p;
  if (mt !== undefined) body.max_tokens = mt;
  if (seed !== undefined) body.seed = seed;
  if (ui.effort.value) body.reasoning_effort = ui.effort.value;
  const stops = ui.stop.value.split(',').map((s) => s.trim()).filter(Boolean);
  if (stops.length) body.stop = stops;
  if (ui.format.value === 'json_object') body.response_format = { type: 'json_object' };
  if (ui.format.value === 'json_schema') {
    let schema;
    try { schema = JSON.parse(ui.schema.value || '{}'); } catch { throw new Error('The JSON schema is not valid JSON.'); }
    body.response_format = { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } };
  }
  if (ui.extra.value.trim()) {
    let extra;
    try { extra = JSON.parse(ui.extra.value); } catch { throw new Error('The extra body fields are not valid JSON.'); }
    if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new Error('The extra body fields must be a JSON object.');
    Object.assign(body, extra);
  }
  body.stream = true;
  body.stream_options = { include_usage: true };
  return body;
}

async function send() {
  if (inflight) return;
  const text = ui.input.value;
  if (!text.trim()) { ui.input.focus(); return; }
  let body;
  const user = { role: 'user', content: text };
  try { body = requestBody([...cur.messages, user]); } catch (e) { ui.status.textContent = e.message; return; }
  if (!cur.messages.length) cur.title = text.slice(0, 40);
  cur.messages.push(user);
  cur.settings = { model: ui.deployment.value };
  const msg = { role: 'assistant', content: '', reasoning: '', tool_calls: [], meta: { state: 'streaming' } };
  cur.messages.push(msg);
  ui.input.value = '';
  save();
  renderAll();
  const controller = new AbortController();
  inflight = { controller, msg };
  ui.send.disabled = true;
  ui.stopBtn.disabled = false;
  const t0 = performance.now();
  let tFirst = null;
  let tLast = null;
  try {
    const r = await raw('/v1/chat/completions', { method: 'POST', body, signal: controller.signal, accept: 'text/event-stream' });
    msg.meta.deployment = r.headers.get('x-nuage-deployment');
    msg.meta.router = r.headers.get('x-nuage-router');
    if (!r.ok) {
      let m = `${r.status}`;
      try { m = `${r.status}: ${(await r.json()).error.message}`; } catch { /* not JSON */ }
      throw new Error(m);
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let done = false;
    while (!done) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of ev.split('\n')) {
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') { done = true; break; }
          let chunk;
          try { chunk = JSON.parse(data); } catch { continue; }
          if (chunk.error) throw new Error(chunk.error.message || 'stream error');
          if (chunk.model) msg.meta.model = chunk.model;
          if (chunk.usage) msg.meta.usage = chunk.usage;
          const ch = chunk.choices?.[0];
          if (!ch) continue;
          const d = ch.delta || {};
          if (d.content || d.reasoning_content || d.tool_calls) {
            tLast = performance.now();
            if (tFirst === null) tFirst = tLast;
          }
          if (d.content) msg.content += d.content;
          if (d.reasoning_content) msg.reasoning += d.reasoning_content;
          for (const tc of d.tool_calls || []) {
            const k = tc.index ?? 0;
            msg.tool_calls[k] ||= { id: tc.id, type: 'function', function: { name: '', arguments: '' } };
            if (tc.id) msg.tool_calls[k].id = tc.id;
            if (tc.function?.name) msg.tool_calls[k].function.name += tc.function.name;
            if (tc.function?.arguments) msg.tool_calls[k].function.arguments += tc.function.arguments;
          }
          if (ch.finish_reason) msg.meta.finish = ch.finish_reason;
        }
        scheduleRender();
      }
    }
    msg.meta.state = 'done';
  } catch (e) {
    if (e.name === 'AbortError') msg.meta.state = 'stopped';
    else { msg.meta.state = 'error'; msg.meta.error = e.message; }
  } finally {
    if (tFirst !== null) msg.meta.ttft = (tFirst - t0) / 1000;
    const n = msg.meta.usage?.completion_tokens;
    // Decode rate over the deltas' arrival; when they came in one burst
    // (a short answer, buffered on the way) that span says nothing, and the
    // rate over the whole request is shown instead.
    if (n && tLast !== null && tLast - tFirst >= 50 && n > 1) msg.meta.tps = (n - 1) / ((tLast - tFirst) / 1000);
    else if (n && tLast !== null && tLast > t0) { msg.meta.tps = n / ((tLast - t0) / 1000); msg.meta.tpsOverall = true; }
    msg.tool_calls = msg.tool_calls.filter(Boolean);
    inflight = null;
    ui.send.disabled = false;
    ui.stopBtn.disabled = true;
    save();
    renderAll();
    document.getElementById('live').textContent =
      msg.meta.state === 'done' ? 'Answer complete.' : msg.meta.state === 'stopped' ? 'Answer stopped.' : 'Request failed.';
  }
}

function stopRequest() {
  if (inflight) inflight.controller.abort();
}

// ---- rendering -------------------------------------------------------------

let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; renderMessages(); });
}

function renderAll() {
  renderConvs();
  renderMessages();
}

function renderConvs() {
  ui.convList.replaceChildren(...convs.map((c) => el('li', { class: c === cur ? 'current' : '' },
    el('button', { type: 'button', class: 'link', 'aria-current': c === cur ? 'true' : null, text: c.title || 'Chat',
      onclick: () => { if (!inflight) { cur = c; renderAll(); } } }),
    el('button', { type: 'button', class: 'icon', 'aria-label': `Delete conversation ${c.title}`, text: '×',
      onclick: () => {
        if (inflight && c === cur) return;
        convs = convs.filter((x) => x !== c);
        if (cur === c) cur = convs[0] || newConv();
        save();
        renderAll();
      } }))));
}

function metaLine(m) {
  const x = m.meta || {};
  const parts = [];
  if (x.model) parts.push(el('span', { 'data-testid': 'answered-by', text: `model ${x.model}` }));
  if (x.router) parts.push(el('span', { 'data-testid': 'router', text: `via router ${x.router}` }));
  const u = x.usage;
  if (u) {
    const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
    parts.push(el('span', { 'data-testid': 'usage', text: `${fmt.int(u.prompt_tokens)} prompt (${fmt.int(cached)} cached) + ${fmt.int(u.completion_tokens)} completion tokens` }));
    const rt = u.completion_tokens_details?.reasoning_tokens;
    if (rt) parts.push(el('span', { text: `${fmt.int(rt)} reasoning` }));
  }
  if (x.ttft !== undefined) parts.push(el('span', { 'data-testid': 'ttft', text: `TTFT ${fmt.ms(x.ttft)}` }));
  if (x.tps) parts.push(el('span', { 'data-testid': 'tps', text: `${x.tps.toFixed(1)} tok/s${x.tpsOverall ? ' overall' : ''}` }));
  if (x.finish) parts.push(el('span', { text: `finish: ${x.finish}` }));
  if (x.state === 'streaming') parts.push(el('span', { class: 'pulse', text: 'streaming…' }));
  if (x.state === 'stopped') parts.push(el('span', { 'data-testid': 'stopped', class: 'warn', text: 'stopped' }));
  if (x.state === 'error') parts.push(el('span', { class: 'err', text: x.error || 'error' }));
  return el('div', { class: 'meta' }, ...parts);
}

function renderMessages() {
  if (!cur.messages.length) {
    ui.log.replaceChildren(el('p', { class: 'empty', text: 'Pick a deployment, type a message and press Enter.' }));
    return;
  }
  const atBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  ui.log.replaceChildren(...cur.messages.map((m, i) => {
    const box = el('article', { class: `msg ${m.role}`, 'aria-label': `${m.role} message ${i + 1}` },
      el('div', { class: 'who', text: m.role }));
    if (m.role !== 'assistant') {
      box.append(el('div', { class: 'text plain', text: m.content }));
      return box;
    }
    if (m.reasoning) {
      box.append(el('details', { class: 'reasoning', 'data-testid': 'reasoning', open: m.meta?.state === 'streaming' && !m.content },
        el('summary', { text: 'Reasoning' }), el('div', { class: 'text plain', text: m.reasoning.trim() })));
    }
    const body = el('div', { class: 'text md', 'data-testid': 'answer' });
    body.innerHTML = renderMarkdown(m.content); // escaped by renderMarkdown
    box.append(body);
    for (const tc of m.tool_calls || []) {
      if (!tc) continue;
      let args = tc.function?.arguments || '';
      try { args = JSON.stringify(JSON.parse(args), null, 2); } catch { /* partial */ }
      box.append(el('div', { class: 'toolcall', 'data-testid': 'toolcall' },
        el('div', { class: 'tc-head' }, el('span', { class: 'badge', text: 'tool call' }), el('code', { text: tc.function?.name || '…' })),
        el('pre', { text: args })));
    }
    box.append(metaLine(m));
    return box;
  }));
  if (atBottom || inflight) ui.log.scrollTop = ui.log.scrollHeight;
}

function exportJson() {
  const blob = new Blob([JSON.stringify({ exported_at: new Date().toISOString(), conversations: convs }, null, 2)], { type: 'application/json' });
  const a = el('a', { href: URL.createObjectURL(blob), download: 'nuage-conversations.json' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ---- view code -------------------------------------------------------------

function pyValue(v, ind = '') {
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  const next = `${ind}    `;
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return `[\n${v.map((x) => next + pyValue(x, next)).join(',\n')},\n${ind}]`;
  }
  const ks = Object.keys(v);
  if (!ks.length) return '{}';
  return `{\n${ks.map((k) => `${next}${JSON.stringify(k)}: ${pyValue(v[k], next)}`).join(',\n')},\n${ind}}`;
}

export function codeSamples(body, origin) {
  const json = JSON.stringify(body, null, 2);
  const curl = `curl ${origin}/v1/chat/completions \\\n  -H "Authorization: Bearer $NUAGE_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${json.replace(/'/g, "'\\''")}'`;
  const js = `import OpenAI from 'openai';\n\nconst client = new OpenAI({\n  baseURL: '${origin}/v1',\n  apiKey: process.env.NUAGE_API_KEY,\n});\n\nconst stream = await client.chat.completions.create(${json.replace(/\n/g, '\n')});\nfor await (const chunk of stream) {\n  process.stdout.write(chunk.choices[0]?.delta?.content ?? '');\n}\n`;
  const kw = Object.entries(body).map(([k, v]) => `    ${k}=${pyValue(v, '    ')},`).join('\n');
  const py = `import os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url="${origin}/v1", api_key=os.environ["NUAGE_API_KEY"])\n\nstream = client.chat.completions.create(\n${kw}\n)\nfor chunk in stream:\n    if chunk.choices and chunk.choices[0].delta.content:\n        print(chunk.choices[0].delta.content, end="", flush=True)\n`;
  return { curl, javascript: js, python: py };
}

function buildCodeDialog() {
  const pre = el('pre', { class: 'codeview', 'data-testid': 'code', tabindex: 0 });
  const tabs = ['curl', 'javascript', 'python'];
  const tabBtns = tabs.map((t) => el('button', { type: 'button', role: 'tab', 'aria-selected': 'false', 'data-tab': t, text: t === 'javascript' ? 'JavaScript' : t === 'python' ? 'Python' : 'curl' }));
  const copy = el('button', { type: 'button', text: 'Copy' });
  const d = el('dialog', { class: 'codedlg', 'aria-labelledby': 'code-title' },
    el('h2', { id: 'code-title', text: 'This request as code' }),
    el('div', { role: 'tablist', 'aria-label': 'Language' }, ...tabBtns),
    pre,
    el('div', { class: 'row' }, copy, el('button', { type: 'button', text: 'Close', onclick: () => d.close() })));
  d.samples = {};
  d.select = (t) => {
    for (const b of tabBtns) b.setAttribute('aria-selected', String(b.dataset.tab === t));
    pre.textContent = d.samples[t] || '';
  };
  for (const b of tabBtns) b.addEventListener('click', () => d.select(b.dataset.tab));
  copy.addEventListener('click', () => navigator.clipboard?.writeText(pre.textContent));
  return d;
}

function showCode() {
  let body;
  const draft = ui.input.value.trim() ? [{ role: 'user', content: ui.input.value }] : [];
  try { body = requestBody([...cur.messages.filter((m) => m.meta?.state !== 'streaming'), ...draft]); } catch (e) { ui.status.textContent = e.message; return; }
  ui.dialog.samples = codeSamples(body, location.origin);
  ui.dialog.select('curl');
  ui.dialog.showModal();
}

export function hide() {}
export const _test = { get modelsLoaded() { return modelsLoaded; } };
