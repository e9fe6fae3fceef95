// API keys: 401 without or with a bad key (both header forms), a key
// restricted to some deployments sees the others as nonexistent (404), the
// admin API needs an admin key. A server with a store requires a key
// always: before the first key exists and after the last one is revoked
// (issue 12, item 2); the open mode exists only with --no-auth on
// loopback; the first log line names the mode. Admin-API model paths stay
// inside --models-dir and never open the store's files (item 3).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import path from 'node:path';
import { existsSync } from 'node:fs';
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
  srv = await new Server(['--config', cfg, '--db', db]).ready();
});

after(async () => {
  if (srv) {
    await srv.stop();
    assertCleanLog(assert, srv);
  }
  cleanup(dir);
});

test('no key in the store yet: closed all the same; the first log line says so', { skip: SKIP }, async () => {
  assert.match(srv.log().split('\n')[0], /^nuage serve: listening on http:\S+ \(auth: API keys required\)$/);
  await assert.rejects(
    srv.client('whatever').chat.completions.create({ model: 'alpha', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 }),
    (e) => e.status === 401,
  );
  assert.equal((await srv.fetch('/v1/models')).status, 401);
  assert.equal((await srv.fetch('/admin/deployments')).status, 401);
  assert.equal((await srv.fetch('/admin/deployments/beta', { method: 'DELETE' })).status, 401);
  assert.equal((await srv.fetch('/health')).status, 200);
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

test('admin-API model paths: the store\'s files and files outside --models-dir are refused, revealing nothing', { skip: SKIP }, async () => {
  const key = createKey(db, { tenant: 'acme' });
  assert.equal((await srv.fetch('/v1/models', { key })).status, 200);
  const msgs = [];
  for (const model of [db, `${db}-wal`, 'nuage.db', '../../etc/passwd', '/etc/passwd', path.join(dir, 'missing.gguf')]) {
    const r = await srv.fetch('/admin/deployments', { method: 'POST', key: keyAdmin, body: { name: 'evil', model } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, 'invalid_deployment');
    assert.doesNotMatch(r.json.error.message, /bytes|SQLite|root:|magic/);
    msgs.push(r.json.error.message.replace(model, ''));
  }
  assert.equal(new Set(msgs).size, 1, msgs.join('\n'));
  assert.equal((await srv.fetch('/admin/deployments/evil', { key: keyAdmin })).status, 404);
  // The store's locks survived: a revocation by the CLI reaches the server,
  // the live WAL is still there, and the server's usage reaches the file.
  assert.ok(existsSync(`${db}-wal`));
  admin(db, 'key', 'revoke', key.slice(0, 11));
  assert.equal((await srv.fetch('/v1/models', { key })).status, 401);
  assert.ok(existsSync(`${db}-wal`));
  const count = () => JSON.parse(admin(db, 'usage', '--json'))[0]?.requests ?? 0;
  const before = count();
  await srv.client(keyA).completions.create({ model: 'alpha', prompt: 'Once', max_tokens: 2 });
  let after = count();
  for (let i = 0; i < 100 && after === before; i++) { await new Promise((r) => setTimeout(r, 50)); after = count(); }
  assert.equal(after, before + 1);
});

test('revoking or expiring the last key never opens the server', { skip: SKIP }, async () => {
  // Revoke every key: no key, the revoked keys and the admin API are 401.
  for (const k of [keyA, keyB, keyAdmin]) admin(db, 'key', 'revoke', k.slice(0, 11));
  assert.match(admin(db, 'key', 'list'), /revoked/);
  const body = { model: 'alpha', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 };
  assert.equal((await srv.fetch('/v1/chat/completions', { method: 'POST', body })).status, 401);
  assert.equal((await srv.fetch('/v1/chat/completions', { method: 'POST', body, key: keyA })).status, 401);
  assert.equal((await srv.fetch('/admin/deployments', { key: keyAdmin })).status, 401);
  assert.equal((await srv.fetch('/admin/deployments/alpha', { method: 'DELETE' })).status, 401);
  assert.equal((await srv.fetch('/admin/deployments/alpha', { method: 'DELETE', key: keyAdmin })).status, 401);
  assert.equal((await srv.fetch('/v1/models')).status, 401);
  // alpha is still deployed (a fresh admin key sees it).
  const k2 = createKey(db, { isAdmin: true });
  assert.equal((await srv.fetch('/admin/deployments/alpha', { key: k2 })).status, 200);
  admin(db, 'key', 'revoke', k2.slice(0, 11));
  assert.equal((await srv.fetch('/v1/models')).status, 401);
});

test('--no-auth: open on loopback only; a store-less non-loopback bind needs --insecure', { skip: SKIP }, async () => {
  const d2 = tempDir();
  try {
    const db2 = path.join(d2, 'empty.db');
    admin(db2, 'tenant', 'list');
    // A store on a non-loopback address starts (keys are required anyway).
    const s = await new Server(['-m', MODEL_FILE, '--host', '0.0.0.0', '--db', db2, '--quiet']).ready();
    assert.match(s.log(), /\(auth: API keys required\)/);
    assert.equal((await s.fetch('/v1/models')).status, 401);
    await s.stop();
    // --no-auth off loopback is refused.
    const s1 = new Server(['-m', MODEL_FILE, '--host', '0.0.0.0', '--db', db2, '--no-auth']);
    assert.equal((await s1.exitPromise).code, 1);
    assert.match(s1.log(), /--no-auth: it is accepted on a loopback address only/);
    assert.doesNotMatch(s1.log(), /listening on/);
    // No store at all: refused without --insecure.
    const s2 = new Server(['-m', MODEL_FILE, '--host', '0.0.0.0', '--no-db']);
    assert.equal((await s2.exitPromise).code, 1);
    assert.match(s2.log(), /refusing to serve on 0\.0\.0\.0 without API keys/);
    // --insecure starts it open, but the admin API is not exposed off loopback.
    const s3 = await new Server(['-m', MODEL_FILE, '--host', '0.0.0.0', '--no-db', '--insecure', '--quiet']).ready();
    assert.match(s3.log().split('\n')[0], /\(auth off: no store, --insecure\)/);
    assert.equal((await s3.fetch('/v1/models')).status, 200);
    assert.equal((await s3.fetch('/admin/deployments')).status, 403);
    await s3.stop();
    // --no-auth on loopback with a store: open, admin API allowed.
    const s4 = await new Server(['-m', MODEL_FILE, '--db', db2, '--no-auth', '--quiet']).ready();
    assert.match(s4.log().split('\n')[0], /\(auth off: --no-auth \(loopback only\)\)/);
    assert.equal((await s4.fetch('/v1/models')).status, 200);
    assert.equal((await s4.fetch('/admin/deployments')).status, 200);
    await s4.stop();
    assertCleanLog(assert, s4);
  } finally {
    cleanup(d2);
  }
});
