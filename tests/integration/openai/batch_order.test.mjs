// GET /v1/files lists newest first by default and with order=desc, oldest
// first with order=asc, and `after` / `limit` page through that order
// (issue 12, item 8: the default and desc were oldest first). Run through
// ../test_batch.sh (NUAGE_BATCH_TESTS=1), skipped otherwise.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import path from 'node:path';
import { MODEL_FILE, Server, tempDir, cleanup, assertCleanLog } from './platform_helpers.mjs';

const SKIP = process.env.NUAGE_BATCH_TESTS === '1' ? false : 'batch tests run through tests/integration/test_batch.sh';
let dir, srv;

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  srv = await new Server(['-m', MODEL_FILE, '--db', path.join(dir, 'order.db'), '--no-auth', '--quiet', '--ctx', '128']).ready();
});

after(async () => {
  if (srv) {
    await srv.stop();
    assertCleanLog(assert, srv);
  }
  cleanup(dir);
});

test('files list: newest first by default and with order=desc', { skip: SKIP }, async () => {
  const c = srv.client();
  const ids = [];
  for (const name of ['first.jsonl', 'second.jsonl', 'third.jsonl', 'fourth.jsonl']) {
    const f = await c.files.create({ file: await toFile(Buffer.from(`{"n": "${name}"}\n`), name), purpose: 'batch' });
    ids.push(f.id);
  }
  const newest = [...ids].reverse();
  const ids_of = async (q) => (await srv.fetch(`/v1/files${q}`)).json.data.map((x) => x.id);
  assert.deepEqual(await ids_of(''), newest);
  assert.deepEqual(await ids_of('?order=desc'), newest);
  assert.deepEqual(await ids_of('?order=asc'), ids);
  assert.deepEqual((await c.files.list()).data.map((x) => x.id), newest);
  // Paging follows the same order.
  const p1 = (await srv.fetch('/v1/files?limit=2')).json;
  assert.deepEqual(p1.data.map((x) => x.id), newest.slice(0, 2));
  assert.equal(p1.has_more, true);
  assert.equal(p1.first_id, newest[0]);
  assert.equal(p1.last_id, newest[1]);
  assert.deepEqual(await ids_of(`?limit=2&after=${p1.last_id}`), newest.slice(2));
  assert.deepEqual(await ids_of(`?order=asc&limit=3&after=${ids[0]}`), ids.slice(1));
  assert.equal((await srv.fetch('/v1/files?order=sideways')).status, 400);
});
