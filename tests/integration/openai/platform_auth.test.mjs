// API keys: 401 without or with a bad key (both header forms), a key
// restricted to some deployments sees the others as nonexistent (404), the
// admin API needs an admin key, auth is off on loopback while the store has
// no key, and a non-loopback bind without any key refuses to start.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import path from 'node:path';
import {
  SKIP, MODEL_FILE, Server, tempDir, cleanup, createTenant, createKey, writeConfig, admin, assertCleanLog,
} from './platform_helpers.mjs';

let dir, db, cfg, srv, keyA, keyB, keyAdmin;

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  db = path.join(dir, 'nuage.db');
  cfg = path.join(dir, 'nuage.json');
  writeConfig(cfg, [
    { name: 'alpha', model: MODEL_FILE, context: 256, parallel: 4, kv_memory: '4M' },
    { name: 'beta', model: MODEL_FILE, context: 256, parallel: 4, kv_memory: '4M', version: 'b1' },
  ]);
  admin(db, 'tenant', 'list'); // creates the database
  // No key yet: the server runs open on loopback.
  srv = await new Server(['--config', cfg, '--db', db]).ready();
});

after(async () => {
  if (srv) {
    await srv.stop();
    assertCleanLog(assert, srv);
  }
  cleanup(dir);
});

test('no key in the store: open on loopback (any key or none works, admin API allowed)', { skip: SKIP }, async () => {
  const r = await srv.client('whatever').chat.completions.create({
    model: 'alpha', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4,
  });
  assert.equal(r.model, 'alpha');
  const m = await srv.fetch('/v1/models');
  assert.equal(m.status, 200);
  assert.deepEqual(m.json.data.map((x) => x.id).sort(), ['alpha', 'beta']);
  assert.equal((await srv.fetch('/admin/deployments')).status, 200);
  // Without any key, a response carries no rate-limit header.
  assert.equal(r.id.startsWith('chatcmpl-'), true);
});

test('keys required once the store has one: 401 invalid_api_key', { skip: SKIP }, async () => {
  createTenant(db, 'acme');
  createTenant(db, 'globex');
  keyA = createKey(db, { tenant: 'acme' });
  keyB = createKey(db, { tenant: 'globex', deployments: 'beta' });
  keyAdmin = createKey(db, { isAdmin: true });
  assert.match(keyA, /^\S{20,}$/);

  // Missing key.
  const none = await srv.fetch('/v1/chat/completions', { method: 'POST', body: { model: 'alpha', messages: [{ role: 'user', content: 'x' }] } });
  assert.equal(none.status, 401);
  assert.equal(none.json.error.code, 'invalid_api_key');
  assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
  // Wrong key, through the SDK.
  await assert.rejects(
    srv.client('nk-not-a-real-key').chat.completions.create({ model: 'alpha', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key',
  );
  await assert.rejects(srv.client('bad').models.list(), (e) => e.status === 401);
  // A valid key in either header.
  const ok1 = await srv.client(keyA).chat.completions.create({ model: 'alpha', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 });
  assert.equal(ok1.model, 'alpha');
  const ok2 = await srv.fetch('/v1/completions', { method: 'POST', headers: { 'api-key': keyA }, body: { model: 'beta', prompt: 'Once', max_tokens: 3 } });
  assert.equal(ok2.status, 200, ok2.text);
  assert.equal(ok2.json.model, 'beta');
  // A revoked key stops working.
  const tmpKey = createKey(db, { tenant: 'acme' });
  assert.equal((await srv.fetch('/v1/models', { key: tmpKey })).status, 200);
  admin(db, 'key', 'revoke', tmpKey.slice(0, 11));
  assert.equal((await srv.fetch('/v1/models', { key: tmpKey })).status, 401);
  // /health and /metrics stay open.
  assert.equal((await srv.fetch('/health')).status, 200);
  assert.equal((await srv.fetch('/metrics')).status, 200);
});

test('a key limited to some deployments: the others are 404 model_not_found', { skip: SKIP }, async () => {
  const cb = srv.client(keyB);
  const list = await cb.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['beta']);
  await assert.rejects(
    cb.chat.completions.create({ model: 'alpha', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found',
  );
  await assert.rejects(cb.models.retrieve('alpha'), (e) => e.status === 404);
  const r = await cb.chat.completions.create({ model: 'beta', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 });
  assert.equal(r.model, 'beta');
  assert.equal(r.system_fingerprint, 'b1');
  // An unknown deployment is the same 404.
  await assert.rejects(
    srv.client(keyA).completions.create({ model: 'gamma', prompt: 'x', max_tokens: 2 }),
    (e) => e.status === 404 && e.code === 'model_not_found',
  );
});

test('admin API: admin key only', { skip: SKIP }, async () => {
  assert.equal((await srv.fetch('/admin/deployments')).status, 401);
  const t = await srv.fetch('/admin/deployments', { key: keyA });
  assert.equal(t.status, 403);
  assert.equal(t.json.error.code, 'permission_denied');
  const a = await srv.fetch('/admin/deployments', { key: keyAdmin });
  assert.equal(a.status, 200);
  assert.deepEqual(a.json.data.map((d) => d.id), ['alpha', 'beta']);
  assert.equal(a.json.data[1].version, 'b1');
  assert.ok(a.json.data[0].memory.kv_bytes > 0);
  assert.equal((await srv.fetch('/admin/usage', { key: keyB })).status, 403);
  assert.equal((await srv.fetch('/admin/usage', { key: keyAdmin })).status, 200);
});

test('a non-loopback address without any key refuses to start (unless --insecure)', { skip: SKIP }, async () => {
  const d2 = tempDir();
  try {
    const db2 = path.join(d2, 'empty.db');
    admin(db2, 'tenant', 'list');
    const s = new Server(['-m', MODEL_FILE, '--host', '0.0.0.0', '--db', db2]);
    const ex = await s.exitPromise;
    assert.equal(ex.code, 1);
    assert.match(s.log(), /refusing to serve on 0\.0\.0\.0 without API keys/);
    assert.doesNotMatch(s.log(), /listening on/);
    // No store at all: refused as well.
    const s2 = new Server(['-m', MODEL_FILE, '--host', '0.0.0.0', '--no-db']);
    assert.equal((await s2.exitPromise).code, 1);
    // --insecure starts it.
    const s3 = await new Server(['-m', MODEL_FILE, '--host', '0.0.0.0', '--db', db2, '--insecure', '--quiet']).ready();
    const r = await s3.fetch('/v1/models');
    assert.equal(r.status, 200);
    // Auth is off but the admin API is not exposed off loopback.
    assert.equal((await s3.fetch('/admin/deployments')).status, 403);
    await s3.stop();
    // With a key in the store, a non-loopback bind starts and requires it.
    createTenant(db2, 't');
    const k = createKey(db2, { tenant: 't' });
    const s4 = await new Server(['-m', MODEL_FILE, '--host', '0.0.0.0', '--db', db2, '--quiet']).ready();
    assert.equal((await s4.fetch('/v1/models')).status, 401);
    assert.equal((await s4.fetch('/v1/models', { key: k })).status, 200);
    await s4.stop();
    assertCleanLog(assert, s4);
  } finally {
    cleanup(d2);
  }
});
