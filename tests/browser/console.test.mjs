// console.test.mjs - the web console in a real browser: Debian's Chromium
// driven headless by puppeteer-core (no browser download), against a real
// `nuage serve` with a store, a tenant key and an admin key, serving the
// bundled models (fast, think, a long-context copy of fast, and a router
// over fast and think).
//
// What it proves: the console's files come with their security headers;
// the playground streams an answer from the bundled model and shows its
// usage (and keeps to a JSON schema when asked); a router request shows
// which model answered; Stop aborts the
// stream and the server cancels the sequence and frees its KV blocks
// (read from /metrics); the usage page's totals equal `nuage admin usage
// --json` and its charts are drawn; the operations page creates a tenant
// and a key, revokes the key (which then gets 401) and replaces a
// deployment; axe-core finds no serious or critical accessibility
// violation on any page at desktop and phone widths; no page ever
// violates the Content-Security-Policy or throws. Screenshots of every
// page at 1280 and 360 px are written to $NUAGE_CONSOLE_ARTIFACTS.
//
// Run by tests/integration/test_console.sh (which skips without Chromium
// or node_modules); NUAGE_BIN and NUAGE_SOURCE_DIR come from ctest.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const BIN = process.env.NUAGE_BIN;
const SRC = process.env.NUAGE_SOURCE_DIR || path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const CHROMIUM = process.env.NUAGE_CHROMIUM || '/usr/bin/chromium';
const ART = process.env.NUAGE_CONSOLE_ARTIFACTS || path.join(tmpdir(), 'nuage-console-screenshots');
const SLOW = Number(process.env.NUAGE_TEST_SLOW || '1');
const MODELS = path.join(SRC, 'models');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let dir;
let db;
let srv;
let url;
let tenantKey;
let adminKey;
let browser;
const problems = []; // CSP violations and page errors, from every page

function admin(...args) {
  return execFileSync(BIN, ['admin', '--db', db, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

async function startServer(args) {
  const p = spawn(BIN, ['serve', '--port', '0', '--quiet', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NUAGE_DB: '' } });
  let log = '';
  p.stderr.setEncoding('utf8');
  p.stderr.on('data', (d) => { log += d; });
  const end = Date.now() + 60_000 * SLOW;
  while (Date.now() < end) {
    const m = log.match(/listening on http:\/\/[^\s]+:(\d+)/);
    if (m) {
      const u = `http://127.0.0.1:${m[1]}`;
      try { if ((await fetch(`${u}/health`)).status === 200) return { p, url: u, log: () => log }; } catch { /* not yet */ }
    }
    if (p.exitCode !== null) break;
    await sleep(50);
  }
  p.kill('SIGKILL');
  throw new Error(`server did not start:\n${log}`);
}

async function stopServer(s) {
  if (!s || s.p.exitCode !== null) return;
  const done = new Promise((r) => s.p.on('exit', r));
  s.p.kill('SIGTERM');
  const t = setTimeout(() => s.p.kill('SIGKILL'), 20_000);
  await done;
  clearTimeout(t);
}

async function metrics() {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = {};
  for (const line of text.split('\n')) {
    const x = line.match(/^([a-z_]+) (\d+(?:\.\d+)?)$/);
    if (x) m[x[1]] = Number(x[2]);
  }
  return m;
}

async function newPage(width = 1280, height = 900) {
  const page = await browser.newPage();
  await page.setViewport({ width, height });
  page.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  return page;
}

async function useKey(page, key, { fresh = true } = {}) {
  await page.goto(`${url}/#playground`, { waitUntil: 'networkidle0' });
  await page.$eval('#apikey', (e) => { e.value = ''; });
  await page.type('#apikey', key);
  await page.keyboard.press('Enter');
  // Each test its own conversation (they share the browser's storage).
  if (fresh) await page.$eval('.convs button', (b) => b.click());
}

// Wait until fn (run in the page) returns a truthy value; returns it.
async function until(page, fn, arg, ms = 30_000 * SLOW) {
  const h = await page.waitForFunction(fn, { timeout: ms, polling: 100 }, arg);
  return h.jsonValue();
}

async function send(page, text, { deployment, effort = '', maxTokens = '', extra = '' } = {}) {
  if (deployment) {
    await until(page, (d) => [...document.querySelectorAll('#pg-deployment option')].some((o) => o.value === d), deployment);
    await page.select('#pg-deployment', deployment);
  }
  await page.select('#pg-effort', effort);
  await page.$eval('#pg-max-tokens', (e, v) => { e.value = v; }, String(maxTokens));
  await page.$eval('#pg-extra', (e, v) => { e.value = v; }, extra);
  const n = await page.$$eval('.msg.assistant', (xs) => xs.length);
  await page.type('#pg-input', text);
  await page.keyboard.press('Enter');
  await until(page, (k) => document.querySelectorAll('.msg.assistant').length > k, n);
  return n; // index of the new assistant message
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'nuage-console-'));
  db = path.join(dir, 'nuage.db');
  admin('tenant', 'create', 'acme', '--tpm', '1000000', '--rpm', '600');
  tenantKey = admin('key', 'create', '--tenant', 'acme');
  adminKey = admin('key', 'create', '--admin');
  const cfg = path.join(dir, 'nuage.json');
  writeFileSync(cfg, JSON.stringify({
    deployments: [
      { name: 'fast', model: path.join(MODELS, 'nuage-fast.gguf'), version: 'f1', context: 256, parallel: 4 },
      { name: 'think', model: path.join(MODELS, 'nuage-think.gguf'), version: 't1', context: 256, parallel: 4 },
      { name: 'long', model: path.join(MODELS, 'nuage-fast.gguf'), context: 8192, parallel: 1 },
      { name: 'auto', kind: 'router', router: { targets: { fast: 'fast', reasoning: 'think' } } },
    ],
  }));
  srv = await startServer(['--config', cfg, '--db', db, '--models-dir', MODELS]);
  url = srv.url;
  mkdirSync(ART, { recursive: true });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  await stopServer(srv);
  if (srv) assert.doesNotMatch(srv.log(), /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/, srv.log());
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the console is served with a strict CSP, nosniff and revalidated caching; unknown paths 404', async () => {
  const r = await fetch(`${url}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
  assert.doesNotMatch(r.headers.get('content-security-policy'), /unsafe-inline|unsafe-eval/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const etag = r.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{16}"$/);
  assert.equal((await fetch(`${url}/`, { headers: { 'if-none-match': etag } })).status, 304);
  const js = await fetch(`${url}/console/app.js`);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  const css = await fetch(`${url}/console/vendor/uPlot.min.css`);
  assert.match(css.headers.get('content-type'), /^text\/css/);
  assert.equal((await fetch(`${url}/console/nope.js`)).status, 404);
  assert.equal((await fetch(`${url}/`, { method: 'POST' })).status, 405);
  // The page is public; the API behind it is not.
  assert.equal((await fetch(`${url}/v1/models`)).status, 401);
  // --no-console turns it off.
  const off = await startServer(['-m', path.join(MODELS, 'nuage-fast.gguf'), '--no-db', '--no-console']);
  try {
    assert.equal((await fetch(`${off.url}/`)).status, 404);
    assert.equal((await fetch(`${off.url}/console/app.js`)).status, 404);
  } finally { await stopServer(off); }
});

test('the playground streams an answer from the bundled model and shows its usage', async () => {
  const page = await newPage();
  await useKey(page, tenantKey);
  const i = await send(page, 'What is 12 + 7?', { deployment: 'fast' });
  const usage = await until(page, (k) => document.querySelectorAll('.msg.assistant')[k].querySelector('[data-testid=usage]')?.textContent, i);
  assert.match(usage, /^\d+ prompt \(\d+ cached\) \+ \d+ completion tokens$/);
  const info = await page.$$eval('.msg.assistant', (xs, k) => ({
    answer: xs[k].querySelector('[data-testid=answer]').textContent,
    model: xs[k].querySelector('[data-testid=answered-by]')?.textContent,
    ttft: xs[k].querySelector('[data-testid=ttft]')?.textContent,
  }), i);
  assert.ok(info.answer.trim().length > 0, 'an answer was rendered');
  assert.equal(info.model, 'model fast');
  assert.match(info.ttft, /^TTFT \d[\d,]* ms$/);
  // The conversation is kept in the browser (localStorage), never the key.
  const stored = await page.evaluate(() => localStorage.getItem('nuage.conversations'));
  assert.match(stored, /What is 12 \+ 7\?/);
  assert.ok(!stored.includes(tenantKey));
  // "View code" gives the same request as curl / JS / Python.
  await page.click('[data-testid=view-code]');
  const curl = await page.$eval('[data-testid=code]', (e) => e.textContent);
  assert.match(curl, /curl http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions/);
  assert.match(curl, /"model": "fast"/);
  await page.click('[data-tab=python]');
  assert.match(await page.$eval('[data-testid=code]', (e) => e.textContent), /from openai import OpenAI[\s\S]*stream=True/);
  await page.keyboard.press('Escape');
  // JSON schema mode: the answer is constrained to the schema.
  await page.select('#pg-format', 'json_schema');
  await page.$eval('#pg-schema', (e) => { e.value = '{"type":"object","properties":{"even":{"type":"boolean"}},"required":["even"],"additionalProperties":false}'; });
  const j = await send(page, 'Is 3 + 4 even?', { deployment: 'fast' });
  await until(page, (k) => document.querySelectorAll('.msg.assistant')[k].querySelector('[data-testid=usage]'), j);
  const json = await page.$$eval('.msg.assistant', (xs, k) => xs[k].querySelector('[data-testid=answer]').textContent, j);
  assert.equal(typeof JSON.parse(json).even, 'boolean', json);
  await page.select('#pg-format', 'text');
  await page.close();
});

test('keyboard only, at phone width: Tab from the top reaches the key, the pages and the message box, Enter sends', async () => {
  const page = await newPage(360, 780);
  await useKey(page, tenantKey);
  await page.reload({ waitUntil: 'networkidle0' }); // focus starts at the top; the key stays in sessionStorage
  const seen = [];
  for (let k = 0; k < 60; k++) {
    await page.keyboard.press('Tab');
    const id = await page.evaluate(() => {
      const e = document.activeElement;
      return e.id || e.getAttribute('data-testid') || e.textContent.trim().slice(0, 20) || e.tagName;
    });
    seen.push(id);
    if (id === 'pg-input') break;
  }
  assert.equal(seen[0], 'Skip to content', seen.join(' | '));
  assert.ok(seen.includes('apikey') && seen.includes('Playground'), seen.join(' | '));
  assert.equal(seen.at(-1), 'pg-input', `the message box is reachable: ${seen.join(' | ')}`);
  const n = await page.$$eval('.msg.assistant', (xs) => xs.length);
  await page.keyboard.type('What is 5 + 5?');
  await page.keyboard.press('Enter');
  await until(page, (k) => document.querySelectorAll('.msg.assistant')[k]?.querySelector('[data-testid=usage]'), n);
  await page.close();
});

test('a router request shows which model answered, and its reasoning in a collapsible block', async () => {
  const page = await newPage();
  await useKey(page, tenantKey);
  const i = await send(page, 'What is 4821 + 3999?', { deployment: 'auto', effort: 'high' });
  await until(page, (k) => document.querySelectorAll('.msg.assistant')[k].querySelector('[data-testid=usage]'), i);
  const info = await page.$$eval('.msg.assistant', (xs, k) => ({
    model: xs[k].querySelector('[data-testid=answered-by]')?.textContent,
    router: xs[k].querySelector('[data-testid=router]')?.textContent,
    reasoning: xs[k].querySelector('details[data-testid=reasoning]') !== null,
  }), i);
  assert.equal(info.model, 'model think');
  assert.equal(info.router, 'via router auto');
  assert.ok(info.reasoning, 'the think model\'s reasoning is shown in a <details> block');
  const j = await send(page, 'What is 2 + 2?', { deployment: 'auto', effort: 'minimal' });
  await until(page, (k) => document.querySelectorAll('.msg.assistant')[k].querySelector('[data-testid=usage]'), j);
  assert.equal(await page.$$eval('.msg.assistant', (xs, k) => xs[k].querySelector('[data-testid=answered-by]').textContent, j), 'model fast');
  await page.close();
});

test('a tool call streams into a card with its name and parsed arguments', async () => {
  // tools and tool_choice "required" through the extra-body box: the
  // grammar forces a valid call even from the bundled arithmetic model
  // (which never learned tools); the long-context copy fits the tool
  // instructions the server adds to the prompt.
  const page = await newPage();
  await useKey(page, tenantKey);
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'current weather',
    parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Oslo', 'Lima'] } },
      required: ['city'], additionalProperties: false } } }];
  const extra = JSON.stringify({ tools, tool_choice: 'required', parallel_tool_calls: false });
  const i = await send(page, 'What is the weather in Oslo?', { deployment: 'long', maxTokens: 400, extra });
  await until(page, (k) => document.querySelectorAll('.msg.assistant')[k].querySelector('[data-testid=usage]'), i);
  const cards = await page.$$eval('.msg.assistant', (xs, k) => [...xs[k].querySelectorAll('[data-testid=toolcall]')]
    .map((c) => ({ name: c.querySelector('code').textContent, args: c.querySelector('pre').textContent })), i);
  assert.equal(cards.length, 1, JSON.stringify(cards));
  assert.equal(cards[0].name, 'get_weather');
  assert.ok(['Oslo', 'Lima'].includes(JSON.parse(cards[0].args).city), cards[0].args);
  await page.close();
});

test('Stop cancels the request: the server frees its sequence (checked through /metrics)', async () => {
  const page = await newPage();
  await useKey(page, tenantKey);
  const before0 = await metrics();
  const i = await send(page, 'Once upon a time', { deployment: 'long', maxTokens: 7000, extra: '{"ignore_eos": true}' });
  // Some text arrived, the sequence is running.
  await until(page, (k) => document.querySelectorAll('.msg.assistant')[k].querySelector('[data-testid=answer]').textContent.length > 20, i);
  const mid = await metrics();
  assert.ok(mid.nuage_running_sequences >= 1, 'the long request is decoding');
  await page.click('[data-testid=stop]');
  await until(page, (k) => document.querySelectorAll('.msg.assistant')[k].querySelector('[data-testid=stopped]'), i);
  let m;
  for (let t = 0; t < 100; t++) {
    m = await metrics();
    if (m.nuage_running_sequences === 0 && m.nuage_requests_cancelled_total > before0.nuage_requests_cancelled_total) break;
    await sleep(100);
  }
  assert.equal(m.nuage_running_sequences, 0);
  assert.equal(m.nuage_kv_blocks_used, 0, 'the stopped sequence\'s KV blocks are back in the pool');
  assert.equal(m.nuage_requests_cancelled_total, before0.nuage_requests_cancelled_total + 1);
  // Far fewer tokens than asked for were generated.
  assert.ok(m.nuage_generated_tokens_total - before0.nuage_generated_tokens_total < 7000);
  await page.close();
});

test('the usage page draws charts with the totals of `nuage admin usage --json`', async () => {
  const page = await newPage();
  await useKey(page, tenantKey);
  await page.goto(`${url}/#usage`, { waitUntil: 'networkidle0' });
  await until(page, () => document.querySelector('[data-testid=total-requests]').textContent !== '–');
  await until(page, () => document.querySelector('[data-testid=chart-tokens] canvas') && document.querySelector('[data-testid=chart-requests] canvas'));
  const shown = await page.evaluate(() => Object.fromEntries(['requests', 'prompt', 'cached', 'completion', 'tokens'].map((k) =>
    [k, Number(document.querySelector(`[data-testid=total-${k}]`).textContent.replace(/,/g, ''))])));
  const cli = JSON.parse(admin('usage', '--tenant', 'acme', '--json'));
  const tot = cli.find((r) => r.group === 'total') || cli[0];
  assert.ok(tot.requests >= 4, JSON.stringify(cli));
  assert.equal(shown.requests, tot.requests);
  assert.equal(shown.prompt, tot.prompt_tokens);
  assert.equal(shown.cached, tot.cached_tokens);
  assert.equal(shown.completion, tot.completion_tokens);
  assert.equal(shown.tokens, tot.prompt_tokens + tot.completion_tokens);
  // Per deployment: the router's requests count under the model that answered.
  const deps = await page.$$eval('[data-testid=by-deployment] .bar-label', (xs) => xs.map((x) => x.textContent).sort());
  const cliDeps = JSON.parse(admin('usage', '--tenant', 'acme', '--by', 'deployment', '--json')).map((r) => r.group).sort();
  assert.deepEqual(deps, cliDeps);
  // Rate-limit headroom from the x-ratelimit-* headers.
  assert.match(await page.$eval('[data-testid=ratelimits]', (e) => e.textContent), /Requests \/ min[\s\S]*\/ 600/);
  await page.close();
});

test('the operations page creates a tenant, edits its limits, creates a key, revokes it (then 401), and replaces a deployment', async () => {
  const page = await newPage();
  await useKey(page, adminKey);
  await page.goto(`${url}/#operations`, { waitUntil: 'networkidle0' });
  await until(page, () => document.querySelector('[data-deployment=fast]'));
  await page.type('[data-testid=tenant-name]', 'beta');
  await page.click('[data-testid=tenant-create]');
  await until(page, () => document.querySelector('[data-tenant=beta]'));
  // Edit its limits: the form saves them (PATCH) and the table shows them.
  await page.$eval('[aria-label="Edit limits of beta"]', (b) => b.click()); // the table may re-render
  await page.$eval('#op-trpm', (e) => { e.value = '42'; });
  await page.click('[data-testid=tenant-create]');
  await until(page, () => document.querySelector('[data-tenant=beta] td:nth-of-type(2)')?.textContent === '42');
  await until(page, () => document.querySelector('[data-testid=key-tenant]').value === 'beta');
  await page.click('[data-testid=key-create]');
  const key = await until(page, () => document.querySelector('[data-testid=new-key]')?.textContent);
  assert.match(key, /^nk-/);
  const ok = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(ok.status, 200);
  await until(page, () => document.querySelector('[data-tenant=beta] [data-testid=revoke]'));
  await page.$eval('[data-tenant=beta] [data-testid=revoke]', (b) => b.click());
  await until(page, () => /revoked/.test(document.querySelector('[data-tenant=beta]')?.textContent || ''));
  const gone = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(gone.status, 401);
  // Replace 'fast' with its own configuration: a new instance serves it.
  const before0 = (await (await fetch(`${url}/admin/deployments/fast`, { headers: { authorization: `Bearer ${adminKey}` } })).json()).instance;
  await page.$eval('[aria-label="Replace fast"]', (b) => b.click());
  await until(page, () => document.querySelector('[data-testid=deploy-config]').value.includes('"fast"'));
  await page.click('[data-testid=deploy-submit]');
  await until(page, () => /fast: replaced/.test(document.querySelector('.deployform').textContent));
  const after0 = (await (await fetch(`${url}/admin/deployments/fast`, { headers: { authorization: `Bearer ${adminKey}` } })).json()).instance;
  assert.ok(after0 > before0, `instance ${before0} -> ${after0}`);
  // The live charts are fed from /admin/stats.
  await until(page, () => document.querySelector('[data-testid=chart-ttft] canvas') && Number(document.querySelector('[data-testid=chart-ttft]').dataset.count) > 0);
  await page.close();
});

test('no serious accessibility violations (axe-core); screenshots at 1280 and 360 px', async () => {
  // A fresh conversation with the think model, its reasoning opened, for
  // the playground's pictures.
  const prep = await newPage();
  await useKey(prep, tenantKey);
  const i = await send(prep, 'What is 4821 + 3999?', { deployment: 'think' });
  await until(prep, (k) => document.querySelectorAll('.msg.assistant')[k].querySelector('[data-testid=usage]'), i);
  await prep.close();
  const report = [];
  for (const [vw, vh, tag] of [[1280, 900, 'desktop'], [360, 780, 'phone']]) {
    for (const [pageName, key] of [['playground', tenantKey], ['usage', tenantKey], ['operations', adminKey]]) {
      const page = await newPage(vw, vh);
      await useKey(page, key, { fresh: false });
      await page.goto(`${url}/#${pageName}`, { waitUntil: 'networkidle0' });
      let load = null;
      if (pageName === 'operations') {
        // Some traffic for the live charts while they poll.
        load = new AbortController();
        fetch(`${url}/v1/completions`, {
          method: 'POST', signal: load.signal, headers: { authorization: `Bearer ${tenantKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'long', prompt: 'Once upon a time', max_tokens: 6000, ignore_eos: true }),
        }).catch(() => {});
        for (let k = 0; k < 6; k++) {
          await sleep(700);
          fetch(`${url}/v1/chat/completions`, {
            method: 'POST', headers: { authorization: `Bearer ${tenantKey}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: `What is ${k} + 5?` }] }),
          }).catch(() => {});
        }
      } else {
        await sleep(800);
      }
      if (pageName === 'playground') await page.$eval('details[data-testid=reasoning]', (d) => { d.open = true; }).catch(() => {});
      await page.evaluate(() => document.activeElement?.blur());
      await page.evaluate(AXE);
      const res = await page.evaluate(() => window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] }));
      const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      for (const v of bad) report.push(`${tag}/${pageName}: ${v.id} (${v.impact}): ${v.help} -> ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
      await page.screenshot({ path: path.join(ART, `${pageName}-${tag}.png`), fullPage: tag === 'desktop' && pageName !== 'playground' });
      load?.abort();
      await page.close();
    }
  }
  assert.deepEqual(report, []);
  assert.deepEqual(problems, [], 'no CSP violation or page error on any page');
});
