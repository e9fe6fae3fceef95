// Deployments: several named deployments from a configuration file; the
// request's model picks one and the response names it; a new version
// replaces a deployment under load without failing any request (streams
// in flight finish on the old weights, new requests report the new
// version); the memory check refuses a deployment that would not fit with
// the bytes needed and available, disturbing nothing; unload; SIGHUP
// re-reads the configuration and applies the difference.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import path from 'node:path';
import { writeFileSync, statSync } from 'node:fs';
import {
  SKIP, MODEL_FILE, MODEL_DIR, Server, tempDir, cleanup, writeConfig, admin, assertCleanLog, sleep, SLOW,
} from './platform_helpers.mjs';

let dir, db, cfg, srv;
const story = (version, extra = {}) => ({ name: 'story', model: MODEL_FILE, version, context: 512, parallel: 8, kv_memory: '8M', ...extra });

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  db = path.join(dir, 'nuage.db');
  cfg = path.join(dir, 'nuage.json');
  admin(db, 'tenant', 'list');
  writeConfig(cfg, [
    story('v1', { sampling: { temperature: 0, max_tokens: 7 } }),
    { name: 'other', model: path.relative(dir, MODEL_FILE), version: 'o1', context: 128, parallel: 2, kv_blocks: 64, log_prompts: true },
  ]);
  srv = await new Server(['--config', cfg, '--db', db, '--no-auth', '--models-dir', MODEL_DIR]).ready();
});

after(async () => {
  if (srv) {
    const ex = await srv.stop();
    assert.equal(ex.code, 0, srv.log());
    assertCleanLog(assert, srv);
  }
  cleanup(dir);
});

test('the request\'s model names a deployment; responses name it; defaults apply', { skip: SKIP }, async () => {
  const c = srv.client();
  const list = await c.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['story', 'other']);
  assert.equal(list.data[0].meta.version, 'v1');
  const a = await c.chat.completions.create({ model: 'story', messages: [{ role: 'user', content: 'Hi' }] });
  assert.equal(a.model, 'story');
  assert.equal(a.system_fingerprint, 'v1');
  // The deployment's default max_tokens (7) applies when the request has none...
  assert.ok(a.usage.completion_tokens <= 7);
  // ...and the request's own value wins.
  const ig = await c.completions.create({ model: 'story', prompt: 'Once', max_tokens: 11, ignore_eos: true });
  assert.equal(ig.usage.completion_tokens, 11);
  // Deterministic default temperature 0: two answers agree.
  const a2 = await c.chat.completions.create({ model: 'story', messages: [{ role: 'user', content: 'Hi' }] });
  assert.equal(a2.choices[0].message.content, a.choices[0].message.content);
  const b = await srv.fetch('/v1/completions', { method: 'POST', body: { model: 'other', prompt: 'Once', max_tokens: 3 } });
  assert.equal(b.status, 200);
  assert.equal(b.json.model, 'other');
  assert.equal(b.headers.get('x-nuage-model-version'), 'o1');
  assert.equal(b.headers.get('x-nuage-deployment'), 'other');
  // The context is the deployment's own.
  const tooLong = await srv.fetch('/v1/completions', { method: 'POST', body: { model: 'other', prompt: 'Once', max_tokens: 200 } });
  assert.equal(tooLong.status, 400);
  assert.equal(tooLong.json.error.code, 'context_length_exceeded');
  await assert.rejects(c.completions.create({ model: 'nope', prompt: 'x', max_tokens: 2 }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  // Prompt text reaches the log only for a deployment that opted in.
  await c.completions.create({ model: 'story', prompt: 'Zebra-secret-story-42', max_tokens: 2 });
  await c.completions.create({ model: 'other', prompt: 'Zebra-opted-in-43', max_tokens: 2 });
  await srv.waitLog(/Zebra-opted-in-43/);
  assert.doesNotMatch(srv.log(), /Zebra-secret-story-42/);
  // Per-deployment metrics.
  const m = await srv.fetch('/metrics');
  assert.match(m.text, /^nuage_deployments 2$/m);
  assert.match(m.text, /^nuage_deployment_kv_blocks_total\{deployment="other"\} 64$/m);
});

test('replacing a version under load: no failed request, new requests see the new version', { skip: SKIP }, async () => {
  const c = srv.client();
  const N = 8;
  const started = [];
  const streams = [];
  for (let i = 0; i < N; i++) {
    let markStarted;
    started.push(new Promise((res) => { markStarted = res; }));
    streams.push((async () => {
      const s = await c.completions.create({
        model: 'story', prompt: `Once upon a time ${i}`, max_tokens: 480, ignore_eos: true, temperature: 0.7, seed: i,
        stream: true, stream_options: { include_usage: true },
      });
      let usage = null, last = 0, n = 0;
      const fps = new Set();
      for await (const ch of s) {
        fps.add(ch.system_fingerprint);
        if (ch.usage) usage = ch.usage;
        if (++n === 2) markStarted();
        last = Date.now();
      }
      return { usage, last, fps: [...fps] };
    })());
  }
  await Promise.all(started);
  // Small requests keep arriving during the swap: none may fail.
  let stop = false;
  const small = [];
  const pump = (async () => {
    while (!stop) {
      small.push(await srv.fetch('/v1/completions', { method: 'POST', body: { model: 'story', prompt: 'Hi', max_tokens: 2 } }));
    }
  })();
  const rep = await srv.fetch('/admin/deployments', { method: 'POST', body: story('v2') });
  const tSwap = Date.now();
  assert.equal(rep.status, 200, rep.text);
  assert.equal(rep.json.replaced, true);
  assert.equal(rep.json.version, 'v2');
  // Keep the pump going until one of its requests reached the new version.
  const until = Date.now() + 60_000 * SLOW;
  while (!small.some((r) => r.headers.get('x-nuage-model-version') === 'v2') && Date.now() < until) await sleep(20);
  stop = true;
  await pump;
  const res = await Promise.all(streams);
  for (const r of res) {
    assert.equal(r.usage.completion_tokens, 480, 'every stream ran to its end');
    assert.deepEqual(r.fps, ['v1'], 'on the weights it started on');
  }
  assert.ok(res.some((r) => r.last > tSwap), 'some streams were still running when the new version took over');
  assert.ok(small.length > 0);
  for (const r of small) assert.equal(r.status, 200, r.text);
  assert.ok(small.some((r) => r.headers.get('x-nuage-model-version') === 'v2'));
  // From now on: v2.
  const after1 = await c.chat.completions.create({ model: 'story', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 });
  assert.equal(after1.system_fingerprint, 'v2');
  const s2 = await c.completions.create({ model: 'story', prompt: 'Once', max_tokens: 3, stream: true });
  for await (const ch of s2) assert.equal(ch.system_fingerprint, 'v2');
  // The old instance drains and is unloaded.
  await srv.waitLog(/old instance drained and unloaded/);
  const m = await srv.fetch('/metrics');
  assert.match(m.text, /^nuage_deployments_draining 0$/m);
});

test('the memory check refuses what does not fit, naming the bytes; nothing else is disturbed', { skip: SKIP }, async () => {
  const r = await srv.fetch('/admin/deployments', { method: 'POST', body: { name: 'huge', model: MODEL_FILE, kv_memory: '64T' } });
  assert.equal(r.status, 507, r.text);
  assert.equal(r.json.error.code, 'insufficient_memory');
  assert.match(r.json.error.message, /deployment 'huge' does not fit in memory: it needs (\d+) bytes .* but only (\d+) bytes are available \(MemAvailable/);
  const [, need, avail] = r.json.error.message.match(/needs (\d+) bytes .* only (\d+) bytes/);
  assert.ok(Number(need) > 64 * 2 ** 40 && Number(avail) < Number(need));
  // A replacement that does not fit leaves the current version serving.
  const r2 = await srv.fetch('/admin/deployments', { method: 'POST', body: story('v3', { kv_memory: '64T' }) });
  assert.equal(r2.status, 507);
  const list = await srv.client().models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['story', 'other']);
  const ok = await srv.client().chat.completions.create({ model: 'story', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
  assert.equal(ok.system_fingerprint, 'v2');
  // Bad configurations are 400s naming the field.
  const bad = await srv.fetch('/admin/deployments', { method: 'POST', body: { name: 'x', model: MODEL_FILE, temperatur: 1 } });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /unknown field "temperatur"/);
  const missing = await srv.fetch('/admin/deployments', { method: 'POST', body: { name: 'x', model: '/nonexistent.gguf' } });
  assert.equal(missing.status, 400);
  assert.equal(missing.json.error.code, 'invalid_deployment');
  // A file outside --models-dir answers the same words as a missing one.
  const outside = await srv.fetch('/admin/deployments', { method: 'POST', body: { name: 'x', model: '/etc/passwd' } });
  assert.equal(outside.status, 400);
  assert.equal(outside.json.error.message.replace('/etc/passwd', ''), missing.json.error.message.replace('/nonexistent.gguf', ''));
});

test('--memory-limit: loaded deployments are charged, the next one is refused', { skip: SKIP }, async () => {
  // a (weights W + 2 MiB) and b (W + 1 MiB) fit, c (W + 3 MiB) does not
  // beside them, but does once b is gone: a limit of 2W + 5.5 MiB.
  const W = statSync(MODEL_FILE).size;
  const limit = String(Math.round(2 * W + 5.5 * 2 ** 20));
  const s = await new Server(['-m', MODEL_FILE, '--alias', 'a', '--no-db', '--kv-memory', '2M', '--memory-limit', limit, '--quiet']).ready();
  try {
    const ok = await s.fetch('/admin/deployments', { method: 'POST', body: { name: 'b', model: MODEL_FILE, kv_memory: '1M' } });
    assert.equal(ok.status, 201, ok.text);
    const no = await s.fetch('/admin/deployments', { method: 'POST', body: { name: 'c', model: MODEL_FILE, kv_memory: '3M' } });
    assert.equal(no.status, 507, no.text);
    assert.match(no.json.error.message, /needs? \d+ bytes .* only \d+ bytes are available \(--memory-limit [\d.]+ MiB minus/);
    // Unloading gives the memory back.
    assert.equal((await s.fetch('/admin/deployments/b', { method: 'DELETE' })).status, 200);
    let again;
    for (let i = 0; i < 100; i++) {
      again = await s.fetch('/admin/deployments', { method: 'POST', body: { name: 'c', model: MODEL_FILE, kv_memory: '3M' } });
      if (again.status !== 507) break;
      await sleep(50);
    }
    assert.equal(again.status, 201, again.text);
  } finally {
    await s.stop();
    assertCleanLog(assert, s);
  }
});

test('unloading a deployment: it is gone, the others serve on', { skip: SKIP }, async () => {
  const d = await srv.fetch('/admin/deployments/other', { method: 'DELETE' });
  assert.equal(d.status, 200);
  assert.equal(d.json.deleted, true);
  await assert.rejects(srv.client().completions.create({ model: 'other', prompt: 'x', max_tokens: 2 }), (e) => e.status === 404);
  assert.equal((await srv.fetch('/admin/deployments/other', { method: 'DELETE' })).status, 404);
  const ok = await srv.client().completions.create({ model: 'story', prompt: 'x', max_tokens: 2 });
  assert.equal(ok.model, 'story');
});

test('SIGHUP re-reads the configuration: adds, replaces and removes deployments', { skip: SKIP }, async () => {
  const d2 = tempDir();
  const cfg2 = path.join(d2, 'nuage.json');
  const a = { name: 'a', model: MODEL_FILE, version: 'a1', context: 128, kv_memory: '1M' };
  const b = { name: 'b', model: MODEL_FILE, version: 'b1', context: 128, kv_memory: '1M' };
  const c = { name: 'c', model: MODEL_FILE, version: 'c1', context: 128, kv_memory: '1M' };
  writeConfig(cfg2, [a, b]);
  const s = await new Server(['--config', cfg2, '--no-db']).ready();
  try {
    const inst = async () => Object.fromEntries((await s.fetch('/admin/deployments')).json.data.map((x) => [x.id, x.instance]));
    const before1 = await inst();
    assert.deepEqual(Object.keys(before1), ['a', 'b']);
    // a unchanged, b removed, c added.
    writeConfig(cfg2, [a, c]);
    s.signal('SIGHUP');
    await s.waitLog(/reloaded .*nuage\.json: .*added c.*removed b|reloaded .*removed b.*added c/);
    const after1 = await inst();
    assert.deepEqual(Object.keys(after1).sort(), ['a', 'c']);
    assert.equal(after1.a, before1.a, 'an unchanged deployment is not reloaded');
    assert.equal((await s.fetch('/v1/completions', { method: 'POST', body: { model: 'c', prompt: 'x', max_tokens: 2 } })).json.model, 'c');
    assert.equal((await s.fetch('/v1/completions', { method: 'POST', body: { model: 'b', prompt: 'x', max_tokens: 2 } })).status, 404);
    // A changed version is replaced (through POST /admin/reload this time).
    writeConfig(cfg2, [{ ...a, version: 'a2' }, c]);
    const rl = await s.fetch('/admin/reload', { method: 'POST' });
    assert.equal(rl.status, 200, rl.text);
    assert.match(rl.json.summary, /replaced a/);
    const r = await s.fetch('/v1/completions', { method: 'POST', body: { model: 'a', prompt: 'x', max_tokens: 2 } });
    assert.equal(r.headers.get('x-nuage-model-version'), 'a2');
    // A broken file changes nothing.
    writeFileSync(cfg2, '{"deployments": [ {"name": "a", ');
    s.signal('SIGHUP');
    await s.waitLog(/reload of .* failed/);
    assert.deepEqual(Object.keys(await inst()).sort(), ['a', 'c']);
    // An entry that cannot load is reported; the rest still applies.
    writeConfig(cfg2, [{ ...a, version: 'a2' }, c, { name: 'd', model: path.join(d2, 'missing.gguf') }, { ...b }]);
    const rl2 = await s.fetch('/admin/reload', { method: 'POST' });
    assert.equal(rl2.status, 400);
    assert.match(rl2.json.error.message, /missing\.gguf/);
    assert.deepEqual(Object.keys(await inst()).sort(), ['a', 'b', 'c']);
  } finally {
    const ex = await s.stop();
    assert.equal(ex.code, 0);
    assertCleanLog(assert, s);
    cleanup(d2);
  }
});

test('a router deployment sends each request to the deployment its module picks', { skip: SKIP }, async () => {
  const d2 = tempDir();
  const cfg2 = path.join(d2, 'nuage.json');
  writeConfig(cfg2, [
    { name: 'fast', model: MODEL_FILE, version: 'f1', context: 128, kv_memory: '1M' },
    { name: 'deep', model: MODEL_FILE, version: 'd1', context: 256, kv_memory: '1M' },
    { name: 'auto', kind: 'router', router: { targets: { fast: 'fast', reasoning: 'deep' } } },
  ]);
  const s = await new Server(['--config', cfg2, '--no-db', '--quiet']).ready();
  try {
    const ask = (extra) => s.fetch('/v1/chat/completions', {
      method: 'POST', body: { model: 'auto', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, ...extra },
    });
    const hi = await ask({ reasoning_effort: 'high' });
    assert.equal(hi.status, 200, hi.text);
    assert.equal(hi.json.model, 'deep');
    assert.equal(hi.headers.get('x-nuage-router'), 'auto');
    assert.equal(hi.headers.get('x-nuage-model-version'), 'd1');
    const lo = await ask({ reasoning_effort: 'minimal' });
    assert.equal(lo.json.model, 'fast');
    const bad = await ask({ reasoning_effort: 'extreme' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, 'reasoning_effort');
    // The router is listed like any deployment.
    const list = await s.fetch('/v1/models');
    assert.deepEqual(list.json.data.map((m) => m.id), ['fast', 'deep', 'auto']);
    assert.equal(list.json.data[2].meta.kind, 'router');
    // A router whose target is missing answers 503, not a crash.
    await s.fetch('/admin/deployments/deep', { method: 'DELETE' });
    const gone = await ask({ reasoning_effort: 'high' });
    assert.equal(gone.status, 503, gone.text);
    assert.equal(gone.json.error.code, 'routing_failed');
  } finally {
    await s.stop();
    assertCleanLog(assert, s);
    cleanup(d2);
  }
});
