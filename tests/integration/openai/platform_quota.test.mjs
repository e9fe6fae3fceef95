// Rate limits: a tenant's requests per minute and tokens per minute count
// across all deployments (issue 12, item 10: two deployments doubled
// them), plus a deployment's optional per-tenant limits (prompt + max_tokens reserved at admission, the unused part
// given back when the request ends), 429 rate_limit_exceeded with
// Retry-After / retry-after-ms, and the x-ratelimit-* headers on every
// response of an authenticated tenant.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import path from 'node:path';
import {
  SKIP, MODEL_FILE, Server, tempDir, cleanup, createTenant, createKey, admin, assertCleanLog, writeConfig,
} from './platform_helpers.mjs';

let dir, db, srv, keyRpm, keyTpm, keyFree, keyRefund;

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  db = path.join(dir, 'nuage.db');
  admin(db, 'tenant', 'list');
  createTenant(db, 'rpm3', { rpm: 3 });
  createTenant(db, 'tpm300', { tpm: 300 });
  createTenant(db, 'free');
  createTenant(db, 'refund', { tpm: 1000, rpm: 100 });
  keyRpm = createKey(db, { tenant: 'rpm3' });
  keyTpm = createKey(db, { tenant: 'tpm300' });
  keyFree = createKey(db, { tenant: 'free' });
  keyRefund = createKey(db, { tenant: 'refund' });
  srv = await new Server(['-m', MODEL_FILE, '--alias', 'story', '--db', db, '--ctx', '512']).ready();
});

after(async () => {
  if (srv) {
    await srv.stop();
    assertCleanLog(assert, srv);
  }
  cleanup(dir);
});

const completion = (max_tokens, extra = {}) => ({ model: 'story', prompt: 'Once upon a time', max_tokens, temperature: 0, ...extra });

test('requests per minute: the 4th request of 3 allowed is a 429 with the headers', { skip: SKIP }, async () => {
  for (let i = 0; i < 3; i++) {
    const r = await srv.fetch('/v1/completions', { method: 'POST', key: keyRpm, body: completion(2) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
    assert.equal(r.headers.get('x-ratelimit-remaining-requests'), String(2 - i));
    assert.equal(r.headers.get('x-ratelimit-limit-tokens'), null, 'no TPM limit, no token headers');
  }
  const r = await srv.fetch('/v1/completions', { method: 'POST', key: keyRpm, body: completion(2) });
  assert.equal(r.status, 429);
  assert.equal(r.json.error.code, 'rate_limit_exceeded');
  assert.equal(r.json.error.type, 'requests');
  const ra = Number(r.headers.get('retry-after'));
  const ram = Number(r.headers.get('retry-after-ms'));
  assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
  assert.ok(ram > 0 && ram <= 60_000, `retry-after-ms ${ram}`);
  assert.ok(Math.abs(ra - Math.ceil(ram / 1000)) <= 1);
  assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
  assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
  // The SDK sees a RateLimitError.
  await assert.rejects(
    srv.client(keyRpm).completions.create(completion(2)),
    (e) => e instanceof OpenAI.RateLimitError && e.status === 429 && e.code === 'rate_limit_exceeded',
  );
  // Every response of that tenant carries the headers, errors included.
  const m = await srv.fetch('/v1/models', { key: keyRpm });
  assert.equal(m.status, 200);
  assert.equal(m.headers.get('x-ratelimit-limit-requests'), '3');
  assert.equal(m.headers.get('x-ratelimit-remaining-requests'), '0');
  const nf = await srv.fetch('/v1/completions', { method: 'POST', key: keyRpm, body: { ...completion(2), model: 'nope' } });
  assert.equal(nf.status, 404);
  assert.equal(nf.headers.get('x-ratelimit-limit-requests'), '3');
  // Another tenant is not affected.
  const other = await srv.fetch('/v1/completions', { method: 'POST', key: keyFree, body: completion(2) });
  assert.equal(other.status, 200);
  assert.equal(other.headers.get('x-ratelimit-limit-requests'), null, 'an unlimited tenant gets no limit headers');
});

test('tokens per minute: prompt + max_tokens are reserved; a request too large for the limit is refused', { skip: SKIP }, async () => {
  const tok = await srv.fetch('/tokenize', { method: 'POST', key: keyTpm, body: { content: 'Once upon a time', add_special: true } });
  const nPrompt = tok.json.tokens.length;
  const r1 = await srv.fetch('/v1/completions', { method: 'POST', key: keyTpm, body: completion(200, { ignore_eos: true }) });
  assert.equal(r1.status, 200, r1.text);
  assert.equal(r1.json.usage.prompt_tokens, nPrompt);
  assert.equal(r1.headers.get('x-ratelimit-limit-tokens'), '300');
  assert.equal(Number(r1.headers.get('x-ratelimit-remaining-tokens')), 300 - (nPrompt + 200));
  // 200 more do not fit in what is left of the minute.
  const r2 = await srv.fetch('/v1/completions', { method: 'POST', key: keyTpm, body: completion(200) });
  assert.equal(r2.status, 429);
  assert.equal(r2.json.error.type, 'tokens');
  assert.ok(Number(r2.headers.get('retry-after-ms')) > 0);
  assert.equal(r2.headers.get('x-ratelimit-limit-tokens'), '300');
  // More than the whole limit can never fit.
  const r3 = await srv.fetch('/v1/completions', { method: 'POST', key: keyTpm, body: completion(400) });
  assert.equal(r3.status, 429);
  assert.match(r3.json.error.message, /too large/i);
  // A small one still fits.
  const r4 = await srv.fetch('/v1/completions', { method: 'POST', key: keyTpm, body: completion(5) });
  assert.equal(r4.status, 200, r4.text);
});

test('the unused part of a reservation is given back when the request ends', { skip: SKIP }, async () => {
  // A stop sequence ends the completion long before max_tokens.
  const body = completion(300, { stop: ['.'] });
  const r = await srv.fetch('/v1/completions', { method: 'POST', key: keyRefund, body });
  assert.equal(r.status, 200, r.text);
  const used = r.json.usage.prompt_tokens + r.json.usage.completion_tokens;
  assert.ok(r.json.usage.completion_tokens < 300, 'stopped early');
  // At admission the whole reservation was counted...
  assert.equal(Number(r.headers.get('x-ratelimit-remaining-tokens')), 1000 - (r.json.usage.prompt_tokens + 300));
  // ...afterwards only what was used.
  const m = await srv.fetch('/v1/models', { key: keyRefund });
  assert.equal(Number(m.headers.get('x-ratelimit-remaining-tokens')), 1000 - used);
  assert.equal(Number(m.headers.get('x-ratelimit-remaining-requests')), 99);
  // Streams are settled too (before [DONE]).
  const s = await srv.client(keyRefund).completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let usage = null;
  for await (const ch of s) if (ch.usage) usage = ch.usage;
  const m2 = await srv.fetch('/v1/models', { key: keyRefund });
  assert.equal(Number(m2.headers.get('x-ratelimit-remaining-tokens')), 1000 - used - (usage.prompt_tokens + usage.completion_tokens));
});

test('tenant limits span deployments; a deployment may add its own per-tenant limits', { skip: SKIP }, async () => {
  const d2 = tempDir();
  let s;
  try {
    const db2 = path.join(d2, 'nuage.db');
    const cfg = path.join(d2, 'nuage.json');
    admin(db2, 'tenant', 'list');
    createTenant(db2, 'wide', { rpm: 3 });
    createTenant(db2, 'open');
    const kWide = createKey(db2, { tenant: 'wide' });
    const kOpen = createKey(db2, { tenant: 'open' });
    const dep = { model: MODEL_FILE, context: 128, parallel: 2, kv_memory: '1M' };
    writeConfig(cfg, [{ name: 'a', ...dep }, { name: 'b', ...dep }, { name: 'small', ...dep, rpm_per_tenant: 1 }]);
    s = await new Server(['--config', cfg, '--db', db2, '--quiet']).ready();
    const call = (key, model) => s.fetch('/v1/completions', { method: 'POST', key, body: { model, prompt: 'Once', max_tokens: 1 } });
    // rpm 3 through two deployments: 3 requests in all, not 3 each.
    for (const m of ['a', 'b', 'a']) assert.equal((await call(kWide, m)).status, 200);
    const r = await call(kWide, 'b');
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.error.code, 'rate_limit_exceeded');
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
    assert.equal((await call(kWide, 'small')).status, 429);
    // A tenant without limits is held to the deployment's own, there only.
    assert.equal((await call(kOpen, 'small')).status, 200);
    const r2 = await call(kOpen, 'small');
    assert.equal(r2.status, 429, r2.text);
    assert.ok(Number(r2.headers.get('retry-after')) >= 1);
    for (let i = 0; i < 4; i++) assert.equal((await call(kOpen, 'a')).status, 200);
  } finally {
    if (s) {
      await s.stop();
      assertCleanLog(assert, s);
    }
    cleanup(d2);
  }
});
