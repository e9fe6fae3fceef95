// Fair scheduling between tenants: tenant A floods the server with 64
// requests; tenant B's single request, sent once A's are queued, gets the
// next free slot (weighted fair queuing by tenant, with the tenant id and
// weight the server passes to the scheduler) instead of waiting behind all
// of A's, as first-come-first-served would make it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  SKIP, MODEL_FILE, Server, tempDir, cleanup, createTenant, createKey, admin, assertCleanLog, sleep, SLOW,
} from './platform_helpers.mjs';

let dir, db, srv, keyA, keyB;

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  db = path.join(dir, 'nuage.db');
  admin(db, 'tenant', 'list');
  createTenant(db, 'flood');
  createTenant(db, 'quiet');
  keyA = createKey(db, { tenant: 'flood' });
  keyB = createKey(db, { tenant: 'quiet' });
  // Two running sequences: everything else waits in the queue.
  srv = await new Server(['-m', MODEL_FILE, '--alias', 'story', '--db', db, '--parallel', '2', '--ctx', '256',
    '--quiet']).ready();
});

after(async () => {
  if (srv) {
    await srv.stop();
    assertCleanLog(assert, srv);
  }
  cleanup(dir);
});

async function queueLength() {
  const r = await srv.fetch('/metrics');
  const m = r.text.match(/^nuage_queue_length (\d+)$/m);
  return m ? Number(m[1]) : 0;
}

test('a tenant flooding the queue does not delay another tenant\'s request', { skip: SKIP }, async () => {
  const order = [];
  const t0 = Date.now();
  const body = { model: 'story', prompt: 'Once upon a time', max_tokens: 200, temperature: 0, ignore_eos: true };
  const ca = srv.client(keyA), cb = srv.client(keyB);
  const flood = [];
  for (let i = 0; i < 64; i++) {
    flood.push(ca.completions.create(body).then((r) => { order.push(`A${i}`); return { r, t: Date.now() - t0 }; }));
  }
  // Wait until A's requests fill the queue.
  const end = Date.now() + 60_000 * SLOW;
  let ql = 0;
  while ((ql = await queueLength()) < 24 && Date.now() < end) await sleep(10);
  assert.ok(ql >= 24, `the flood is queued (${ql})`);
  const tb = Date.now();
  const rb = await cb.completions.create(body);
  const bLatency = Date.now() - tb;
  order.push('B');
  const posB = order.indexOf('B');
  const results = await Promise.all(flood);
  const lastA = Math.max(...results.map((x) => x.t));
  assert.equal(rb.usage.completion_tokens, 200);
  for (const x of results) assert.equal(x.r.usage.completion_tokens, 200);
  // B got one of the next free slots: only a few of A's requests (those
  // running when B arrived and those admitted while B's request was being
  // authenticated -- each completion's usage record is an fsync under the
  // store's lock) finished first, out of the 64 queued before it; FIFO
  // would put B last.
  assert.ok(posB <= 20, `B finished in position ${posB} of 65: ${order.slice(0, 12).join(' ')}`);
  assert.ok(bLatency < lastA / 3, `B took ${bLatency} ms, A's flood ${lastA} ms`);
  // The scheduler saw both tenants (the flood is not starved either).
  assert.equal(results.length, 64);
});
