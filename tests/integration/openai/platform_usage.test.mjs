// Metering: every request that completed is in the usage records even when
// the server is SIGKILLed right after its last response (the record is
// durable before the response's last byte, for streams before [DONE]);
// the totals match the usage the responses reported; tenants see their
// own totals at /v1/usage and another tenant's answer 404; the admin sees
// every tenant's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFileSync, existsSync } from 'node:fs';
import {
  SKIP, MODEL_FILE, Server, tempDir, cleanup, createTenant, createKey, admin, assertCleanLog,
} from './platform_helpers.mjs';

let dir, db, keyA, keyB, keyAdmin;
const sent = { acme: { requests: 0, prompt: 0, completion: 0, cached: 0 }, globex: { requests: 0, prompt: 0, completion: 0, cached: 0 } };

function count(who, usage) {
  sent[who].requests++;
  sent[who].prompt += usage.prompt_tokens;
  sent[who].completion += usage.completion_tokens ?? 0;
  sent[who].cached += usage.prompt_tokens_details?.cached_tokens ?? 0;
}

before(() => {
  if (SKIP) return;
  dir = tempDir();
  db = path.join(dir, 'nuage.db');
  admin(db, 'tenant', 'list');
  createTenant(db, 'acme');
  createTenant(db, 'globex');
  keyA = createKey(db, { tenant: 'acme' });
  keyB = createKey(db, { tenant: 'globex' });
  keyAdmin = createKey(db, { isAdmin: true });
});

after(() => cleanup(dir));

test('usage totals survive a SIGKILL right after the last response', { skip: SKIP }, async () => {
  const srv = await new Server(['-m', MODEL_FILE, '--alias', 'story', '--db', db, '--quiet']).ready();
  const ca = srv.client(keyA), cb = srv.client(keyB);
  const msgs = [{ role: 'user', content: 'Tell me a story about a dog.' }];
  // Tenant acme: plain, streamed and several-prompt requests, chat and completions.
  count('acme', (await ca.chat.completions.create({ model: 'story', messages: msgs, max_tokens: 12 })).usage);
  const secret = 'Platypus-never-stored-7391';
  count('acme', (await ca.completions.create({ model: 'story', prompt: secret, max_tokens: 4 })).usage);
  count('acme', (await ca.completions.create({ model: 'story', prompt: 'Once upon a time', max_tokens: 9 })).usage);
  const s = await ca.chat.completions.create({ model: 'story', messages: msgs, max_tokens: 15, stream: true, stream_options: { include_usage: true } });
  let su = null;
  for await (const ch of s) if (ch.usage) su = ch.usage;
  count('acme', su);
  count('acme', (await ca.completions.create({ model: 'story', prompt: ['One day', 'A cat'], max_tokens: 5, n: 2 })).usage);
  count('acme', (await ca.embeddings.create({ model: 'story', input: 'a small dog', encoding_format: 'float' })).usage);
  // Tenant globex: two streams, the last one right before the kill.
  for (let i = 0; i < 2; i++) {
    const st = await cb.completions.create({ model: 'story', prompt: `The sun ${i}`, max_tokens: 7, stream: true, stream_options: { include_usage: true } });
    let u = null;
    for await (const ch of st) if (ch.usage) u = ch.usage;
    count('globex', u);
  }
  // A request refused before admission is not metered.
  await assert.rejects(ca.completions.create({ model: 'story', prompt: 'x', temperature: 9 }), (e) => e.status === 400);
  await srv.kill(); // SIGKILL: no chance to flush anything
  assert.equal(srv.exited.sig, 'SIGKILL');

  for (const who of ['acme', 'globex']) {
    const rows = JSON.parse(admin(db, 'usage', '--tenant', who, '--json'));
    assert.equal(rows.length, 1);
    assert.equal(rows[0].requests, sent[who].requests, `${who}: ${JSON.stringify(rows)}`);
    assert.equal(rows[0].prompt_tokens, sent[who].prompt);
    assert.equal(rows[0].completion_tokens, sent[who].completion);
    assert.equal(rows[0].cached_tokens, sent[who].cached);
  }
  const all = JSON.parse(admin(db, 'usage', '--json'));
  assert.equal(all[0].requests, sent.acme.requests + sent.globex.requests);
  // Counts only: the prompt text is nowhere in the database files.
  for (const f of [db, `${db}-wal`]) {
    if (existsSync(f)) assert.equal(readFileSync(f).includes(secret), false, `${f} holds prompt text`);
  }
  const byDep = JSON.parse(admin(db, 'usage', '--by', 'deployment', '--json'));
  assert.deepEqual(byDep.map((r) => r.group), ['story']);
});

test('restarted on the same store: /v1/usage is per tenant, others are 404; the admin sees all', { skip: SKIP }, async () => {
  const srv = await new Server(['-m', MODEL_FILE, '--alias', 'story', '--db', db, '--quiet']).ready();
  try {
    const a = await srv.fetch('/v1/usage', { key: keyA });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json.tenant, 'acme');
    assert.equal(a.json.data[0].requests, sent.acme.requests);
    assert.equal(a.json.data[0].prompt_tokens, sent.acme.prompt);
    assert.equal(a.json.data[0].completion_tokens, sent.acme.completion);
    const b = await srv.fetch('/v1/usage', { key: keyB });
    assert.equal(b.json.data[0].requests, sent.globex.requests);
    // Own name is fine, another tenant's is not found (exists or not).
    assert.equal((await srv.fetch('/v1/usage?tenant=acme', { key: keyA })).status, 200);
    const x = await srv.fetch('/v1/usage?tenant=globex', { key: keyA });
    assert.equal(x.status, 404);
    assert.equal(x.json.error.code, 'tenant_not_found');
    const y = await srv.fetch('/v1/usage?tenant=nobody', { key: keyA });
    assert.equal(y.status, 404);
    assert.deepEqual(y.json.error.code, x.json.error.code);
    assert.equal((await srv.fetch('/v1/usage')).status, 401);
    // Grouping and filters.
    const d = await srv.fetch('/v1/usage?by=deployment&since=2000-01-01', { key: keyA });
    assert.equal(d.json.data[0].group, 'story');
    assert.equal(d.json.data[0].requests, sent.acme.requests);
    const future = await srv.fetch(`/v1/usage?since=${Date.now() + 3_600_000}`, { key: keyA });
    assert.equal(future.status, 200);
    assert.equal(future.json.data.reduce((s, r) => s + r.requests, 0), 0);
    assert.equal((await srv.fetch('/v1/usage?by=color', { key: keyA })).status, 400);
    // The admin view.
    const adm = await srv.fetch('/admin/usage?by=tenant', { key: keyAdmin });
    assert.equal(adm.status, 200, adm.text);
    const byT = Object.fromEntries(adm.json.data.map((r) => [r.group, r.requests]));
    assert.deepEqual(byT, { acme: sent.acme.requests, globex: sent.globex.requests });
    const one = await srv.fetch('/admin/usage?tenant=globex', { key: keyAdmin });
    assert.equal(one.json.data[0].completion_tokens, sent.globex.completion);
    assert.equal((await srv.fetch('/admin/usage?tenant=nobody', { key: keyAdmin })).status, 404);
    // A tenant's own new request shows up at once.
    await srv.client(keyA).completions.create({ model: 'story', prompt: 'Hello', max_tokens: 2 });
    const a2 = await srv.fetch('/v1/usage', { key: keyA });
    assert.equal(a2.json.data[0].requests, sent.acme.requests + 1);
  } finally {
    await srv.stop();
    assertCleanLog(assert, srv);
  }
});
