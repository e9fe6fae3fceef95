// Isolation between tenants: the prefix cache is scoped per tenant (a
// prompt cached for tenant A is never served to tenant B, so B cannot
// learn from cached_tokens or timing what A sent), and deployments a key
// may not use do not exist for it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  SKIP, MODEL_FILE, Server, tempDir, cleanup, createTenant, createKey, admin, assertCleanLog,
} from './platform_helpers.mjs';

let dir, db, srv, keyA, keyB, keyA2;

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  db = path.join(dir, 'nuage.db');
  admin(db, 'tenant', 'list');
  createTenant(db, 'acme');
  createTenant(db, 'globex');
  keyA = createKey(db, { tenant: 'acme' });
  keyA2 = createKey(db, { tenant: 'acme' });
  keyB = createKey(db, { tenant: 'globex' });
  srv = await new Server(['-m', MODEL_FILE, '--alias', 'story', '--db', db, '--ctx', '512', '--kv-blocks', '256',
    '--quiet']).ready();
});

after(async () => {
  if (srv) {
    await srv.stop();
    assertCleanLog(assert, srv);
  }
  cleanup(dir);
});

const long = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with '
  + 'her big red ball. One day, she saw a small bird sitting on a tree. The bird was sad because it could not fly. '
  + 'Lily wanted to help the bird, so she took it home and gave it some water and bread. The next day, ';

async function cached(key, prompt) {
  const r = await srv.client(key).completions.create({ model: 'story', prompt, max_tokens: 2, temperature: 0 });
  assert.ok(r.usage.prompt_tokens > 64, 'a prompt of several KV blocks');
  return r.usage.prompt_tokens_details?.cached_tokens ?? 0;
}

test('a prompt cached for one tenant is not served from the cache to another', { skip: SKIP }, async () => {
  assert.equal(await cached(keyA, long), 0, 'first time: nothing cached');
  assert.equal(await cached(keyB, long), 0, 'another tenant: nothing cached');
  const again = await cached(keyA, long);
  assert.ok(again >= 64, `the first tenant hits its own cache (${again})`);
  // Any key of the same tenant shares that tenant's cache.
  assert.ok((await cached(keyA2, long)) >= 64);
  // And the second tenant has its own cache now.
  assert.ok((await cached(keyB, long)) >= 64);
  // A different prompt of the same length is not a hit (the check above is not vacuous).
  assert.equal(await cached(keyA, long.replace('Lily', 'Mia').replace('Once', 'One')), 0);
});
