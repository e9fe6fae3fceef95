// The Files and Batch APIs through the official openai SDK: upload / list /
// retrieve / content / delete, a batch whose output is checked line by line
// against the same requests made interactively (greedy decoding: identical
// text), malformed lines and invalid requests in the error file with their
// line numbers, cancellation, a batch surviving kill -9 of the server (every
// line exactly once after the restart, recorded lines not run again),
// another tenant's files and batches answering 404, and the `nuage batch`
// command. Each test starts its own `nuage serve` with a temporary database;
// run through ../test_batch.sh (NUAGE_BATCH_TESTS=1), skipped otherwise.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import { execFile } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  MODEL_FILE, BIN, SLOW, Server, tempDir, cleanup, createTenant, createKey, admin, assertCleanLog, sleep,
} from './platform_helpers.mjs';

const ENABLED = process.env.NUAGE_BATCH_TESTS === '1';
let SKIP = ENABLED ? false : 'batch tests run through tests/integration/test_batch.sh';
const MODEL = 'story';

let dir;
const servers = [];

// Open (--no-auth) unless the test gives keys (auth: true).
function serve(db, extra = [], env = {}, { auth = false } = {}) {
  const s = new Server(['-m', MODEL_FILE, '--alias', MODEL, '--db', db, '--parallel', '8', '--ctx', '512', '--quiet',
    ...(auth ? [] : ['--no-auth']), ...extra], { env });
  servers.push(s);
  return s.ready();
}

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  // Is the Batch API wired into `nuage serve`?
  const db = path.join(dir, 'probe.db');
  const s = await serve(db);
  const r = await s.fetch('/v1/files');
  await s.stop();
  if (r.status === 404) SKIP = 'the Files / Batch API routes are not registered by nuage serve';
});

after(async () => {
  for (const s of servers) {
    await s.stop();
    assertCleanLog(assert, s);
  }
  cleanup(dir);
});

const prompts = ['Once upon a time', 'The little dog', 'Tom and Lily went', 'One day, a bird', 'The sun was',
  'Mia had a red ball', 'There was a big tree', 'Ben liked to run'];

function chatBody(i, maxTokens = 12) {
  return { model: MODEL, messages: [{ role: 'user', content: prompts[i % prompts.length] + ` (${i})` }],
    max_tokens: maxTokens, temperature: 0 };
}

function line(customId, body, url = '/v1/chat/completions') {
  return JSON.stringify({ custom_id: customId, method: 'POST', url, body });
}

async function waitBatch(client, id, want = ['completed', 'failed', 'cancelled', 'expired'], timeoutMs = 300_000 * SLOW) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const b = await client.batches.retrieve(id);
    if (want.includes(b.status)) return b;
    if (Date.now() > end) throw new Error(`batch ${id} still ${b.status}`);
    await sleep(100);
  }
}

async function fileLines(client, id) {
  const r = await client.files.content(id);
  const text = await r.text();
  assert.ok(text.endsWith('\n'));
  return text.trimEnd().split('\n').map((l) => JSON.parse(l));
}

test('files: create (purpose batch), retrieve, list, content, delete', async (t) => {
  if (SKIP) return t.skip(SKIP);
  const s = await serve(path.join(dir, 'files.db'));
  const c = s.client();
  const content = `${line('a', chatBody(0))}\n${line('b', chatBody(1))}\n`;
  const f = await c.files.create({ file: await toFile(Buffer.from(content), 'input.jsonl'), purpose: 'batch' });
  assert.match(f.id, /^file-/);
  assert.equal(f.object, 'file');
  assert.equal(f.bytes, Buffer.byteLength(content));
  assert.equal(f.filename, 'input.jsonl');
  assert.equal(f.purpose, 'batch');
  const g = await c.files.retrieve(f.id);
  assert.deepEqual({ id: g.id, bytes: g.bytes, filename: g.filename }, { id: f.id, bytes: f.bytes, filename: f.filename });
  // a binary-safe second file (NUL and non-UTF-8 bytes)
  const bin = Buffer.from([0, 1, 2, 255, 10, 13, 10, 0]);
  const f2 = await c.files.create({ file: await toFile(bin, 'blob.bin'), purpose: 'user_data' });
  assert.deepEqual(Buffer.from(await (await c.files.content(f2.id)).arrayBuffer()), bin);
  const list = await c.files.list({ purpose: 'batch' });
  assert.deepEqual(list.data.map((x) => x.id), [f.id]);
  const all = await c.files.list();
  assert.deepEqual(all.data.map((x) => x.id).sort(), [f.id, f2.id].sort());
  assert.equal(await (await c.files.content(f.id)).text(), content);
  const del = await c.files.delete(f.id);
  assert.deepEqual({ id: del.id, deleted: del.deleted }, { id: f.id, deleted: true });
  await assert.rejects(c.files.retrieve(f.id), (e) => e.status === 404);
  await assert.rejects(c.files.content(f.id), (e) => e.status === 404);
  // bad uploads
  await assert.rejects(c.files.create({ file: await toFile(Buffer.from('x'), 'a.jsonl'), purpose: 'nonsense' }),
    (e) => e.status === 400 && e.param === 'purpose');
  await assert.rejects(c.files.create({ file: await toFile(Buffer.alloc(0), 'a.jsonl'), purpose: 'batch' }),
    (e) => e.status === 400 && e.param === 'file');
  const raw = await s.fetch('/v1/files', { method: 'POST', body: '{"purpose": "batch"}' });
  assert.equal(raw.status, 400);
});

test('batch: one output line per request, same text as interactive, errors with line numbers', async (t) => {
  if (SKIP) return t.skip(SKIP);
  const s = await serve(path.join(dir, 'out.db'));
  const c = s.client();
  const N = 8;
  const lines = [];
  const kinds = [];
  for (let i = 0; i < N; i++) {
    if (i === 3) { lines.push('{"custom_id": "broken", "method": "POST",'); kinds.push('json'); continue; }
    if (i === 5) { lines.push(line('bad-temp', { ...chatBody(i), temperature: 5 })); kinds.push('400'); continue; }
    lines.push(line(`req-${i}`, chatBody(i)));
    kinds.push('ok');
  }
  const f = await c.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'in.jsonl'), purpose: 'batch' });
  const b0 = await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h',
    metadata: { job: 'test' } });
  assert.match(b0.id, /^batch_/);
  assert.equal(b0.object, 'batch');
  assert.equal(b0.endpoint, '/v1/chat/completions');
  assert.equal(b0.input_file_id, f.id);
  assert.deepEqual(b0.metadata, { job: 'test' });
  assert.ok(['validating', 'in_progress'].includes(b0.status));
  const b = await waitBatch(c, b0.id);
  assert.equal(b.status, 'completed');
  assert.deepEqual(b.metadata, { job: 'test' }); // kept, not only echoed by create
  const nOk = kinds.filter((k) => k === 'ok').length;
  assert.deepEqual(b.request_counts, { total: N, completed: nOk, failed: N - nOk });
  assert.ok(b.completed_at >= b.in_progress_at && b.in_progress_at >= b.created_at);
  const out = await fileLines(c, b.output_file_id);
  assert.equal(out.length, nOk);
  let k = 0;
  for (let i = 0; i < N; i++) {
    if (kinds[i] !== 'ok') continue;
    const o = out[k++];
    assert.equal(o.custom_id, `req-${i}`);
    assert.equal(o.error, null);
    assert.equal(o.response.status_code, 200);
    assert.match(o.id, /^batch_req_/);
    assert.match(o.response.request_id, /^req_/);
    const body = o.response.body;
    assert.equal(body.object, 'chat.completion');
    // the same request made interactively gives the same text
    const live = await c.chat.completions.create(chatBody(i));
    assert.equal(body.choices[0].message.content, live.choices[0].message.content);
    assert.equal(body.usage.completion_tokens, live.usage.completion_tokens);
  }
  const errs = await fileLines(c, b.error_file_id);
  assert.equal(errs.length, N - nOk);
  const bad = errs.find((e) => e.custom_id === null);
  assert.equal(bad.error.line, 4);
  assert.match(bad.error.message, /^Line 4:/);
  assert.equal(bad.response, null);
  const inv = errs.find((e) => e.custom_id === 'bad-temp');
  assert.equal(inv.response.status_code, 400);
  assert.equal(inv.response.body.error.param, 'temperature');
  // listed, and no longer cancellable
  const list = await c.batches.list();
  assert.ok(list.data.some((x) => x.id === b.id));
  assert.deepEqual(list.data.find((x) => x.id === b.id).metadata, { job: 'test' });
  await assert.rejects(c.batches.cancel(b.id), (e) => e.status === 409);
  await assert.rejects(c.batches.retrieve('batch_nope'), (e) => e.status === 404);
  await assert.rejects(c.batches.create({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' }),
    (e) => e.status === 404);
  await assert.rejects(c.batches.create({ input_file_id: f.id, endpoint: '/v1/audio/speech', completion_window: '24h' }),
    (e) => e.status === 400 && e.param === 'endpoint');
});

test('batch: structured outputs in lines (the same handlers as live requests)', async (t) => {
  if (SKIP) return t.skip(SKIP);
  const s = await serve(path.join(dir, 'cg.db'));
  const c = s.client();
  const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 99 }, ok: { type: 'boolean' } },
    required: ['n', 'ok'], additionalProperties: false };
  const msgs = [{ role: 'user', content: 'Once upon a time' }];
  const lines = [
    line('json', { model: MODEL, messages: msgs, max_tokens: 120, response_format: { type: 'json_schema', json_schema: { name: 's', strict: true, schema } } }),
    line('choice', { model: MODEL, messages: msgs, max_tokens: 20, structured_outputs: { choice: ['left', 'right'] } }),
    line('refused', { model: MODEL, messages: msgs, max_tokens: 8, response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'array', uniqueItems: true } } } }),
  ];
  const f = await c.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'cg.jsonl'), purpose: 'batch' });
  const b = await waitBatch(c, (await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id);
  assert.equal(b.status, 'completed');
  const out = await fileLines(c, b.output_file_id);
  const json = out.find((o) => o.custom_id === 'json').response.body.choices[0];
  assert.equal(json.finish_reason, 'stop');
  const v = JSON.parse(json.message.content);
  assert.ok(Number.isInteger(v.n) && v.n >= 0 && v.n <= 99 && typeof v.ok === 'boolean');
  const pick = out.find((o) => o.custom_id === 'choice').response.body.choices[0];
  assert.ok(['left', 'right'].includes(pick.message.content));
  const errs = await fileLines(c, b.error_file_id);
  const ref = errs.find((e) => e.custom_id === 'refused');
  assert.equal(ref.response.status_code, 400);
  assert.equal(ref.response.body.error.param, 'response_format');
});

test('batch: cancel', async (t) => {
  if (SKIP) return t.skip(SKIP);
  const s = await serve(path.join(dir, 'cancel.db'), [], { NUAGE_BATCH_CONCURRENCY: '1' });
  const c = s.client();
  const N = 200;
  const content = Array.from({ length: N }, (_, i) => line(`c${i}`, chatBody(i, 200))).join('\n');
  const f = await c.files.create({ file: await toFile(Buffer.from(content), 'in.jsonl'), purpose: 'batch' });
  const b0 = await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  for (;;) {
    const b = await c.batches.retrieve(b0.id);
    if (b.request_counts.completed >= 1) break;
    await sleep(20);
  }
  const cc = await c.batches.cancel(b0.id);
  assert.ok(['cancelling', 'cancelled'].includes(cc.status));
  const b = await waitBatch(c, b0.id);
  assert.equal(b.status, 'cancelled');
  assert.ok(b.cancelled_at > 0);
  assert.ok(b.request_counts.completed >= 1 && b.request_counts.completed < N, JSON.stringify(b.request_counts));
  const out = await fileLines(c, b.output_file_id);
  assert.equal(out.length, b.request_counts.completed);
});

test('batch: survives kill -9 of the server, every line exactly once', async (t) => {
  if (SKIP) return t.skip(SKIP);
  const db = path.join(dir, 'restart.db');
  let s = await serve(db);
  let c = s.client();
  const N = 40;
  const content = Array.from({ length: N }, (_, i) => line(`r${i}`, chatBody(i, 48))).join('\n') + '\n';
  const f = await c.files.create({ file: await toFile(Buffer.from(content), 'in.jsonl'), purpose: 'batch' });
  const b0 = await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  let before;
  for (;;) {
    before = await c.batches.retrieve(b0.id);
    if (before.request_counts.completed >= 3) break;
    await sleep(5);
  }
  t.diagnostic(`killed with ${before.request_counts.completed} of ${N} lines recorded`);
  await s.kill();
  assert.ok(before.request_counts.completed < N, 'the batch ended before the kill: make it longer');
  // the count read before the kill is a lower bound of what was recorded
  s = await serve(db, [], {});
  c = s.client();
  const b = await waitBatch(c, b0.id);
  assert.equal(b.status, 'completed');
  assert.deepEqual(b.request_counts, { total: N, completed: N, failed: 0 });
  const out = await fileLines(c, b.output_file_id);
  assert.equal(out.length, N);
  assert.deepEqual(out.map((o) => o.custom_id), Array.from({ length: N }, (_, i) => `r${i}`));
  // the resumed run skipped what was recorded before the kill
  await s.waitLog(/running (\d+) of 40 lines \((\d+) already done\)/);
  const m = s.log().match(/running (\d+) of 40 lines \((\d+) already done\)/);
  assert.ok(Number(m[2]) >= before.request_counts.completed, s.log());
  assert.equal(Number(m[1]) + Number(m[2]), N);
  assert.ok(Number(m[1]) > 0);
  // and the answers are right: same text as interactive for a sample
  for (const i of [0, 17, N - 1]) {
    const live = await c.chat.completions.create(chatBody(i, 48));
    assert.equal(out[i].response.body.choices[0].message.content, live.choices[0].message.content);
  }
});

test('batch: another tenant sees 404 for files and batches', async (t) => {
  if (SKIP) return t.skip(SKIP);
  const db = path.join(dir, 'tenants.db');
  admin(db, 'tenant', 'list');
  createTenant(db, 'acme');
  createTenant(db, 'globex');
  const keyA = createKey(db, { tenant: 'acme' });
  const keyB = createKey(db, { tenant: 'globex' });
  const s = await serve(db, [], {}, { auth: true });
  const a = s.client(keyA), bcl = s.client(keyB);
  const f = await a.files.create({ file: await toFile(Buffer.from(line('x', chatBody(0, 4)) + '\n'), 'a.jsonl'), purpose: 'batch' });
  const b = await a.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  await assert.rejects(bcl.files.retrieve(f.id), (e) => e.status === 404);
  await assert.rejects(bcl.files.content(f.id), (e) => e.status === 404);
  await assert.rejects(bcl.files.delete(f.id), (e) => e.status === 404);
  await assert.rejects(bcl.batches.retrieve(b.id), (e) => e.status === 404);
  await assert.rejects(bcl.batches.cancel(b.id), (e) => e.status === 404);
  await assert.rejects(bcl.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
    (e) => e.status === 404);
  assert.equal((await bcl.files.list()).data.length, 0);
  assert.equal((await bcl.batches.list()).data.length, 0);
  const done = await waitBatch(a, b.id);
  assert.equal(done.status, 'completed');
  await assert.rejects(bcl.files.content(done.output_file_id), (e) => e.status === 404);
  assert.equal((await (await a.files.content(done.output_file_id)).text()).split('\n').length, 2);
  // no key at all: 401
  const anon = await s.fetch('/v1/files');
  assert.equal(anon.status, 401);
});

test('nuage batch submit / status / download', async (t) => {
  if (SKIP) return t.skip(SKIP);
  const s = await serve(path.join(dir, 'cli.db'));
  const input = path.join(dir, 'cli-in.jsonl');
  const N = 5;
  writeFileSync(input, Array.from({ length: N }, (_, i) => line(`k${i}`, chatBody(i, 8))).join('\n') + '\n' +
    'not json\n');
  const out = path.join(dir, 'cli-out.jsonl');
  const run = (args) => new Promise((res) => {
    execFile(BIN, ['batch', ...args, '--url', s.url], { encoding: 'utf8' }, (err, stdout, stderr) =>
      res({ code: err ? err.code : 0, stdout, stderr }));
  });
  const r = await run(['submit', input, '--deployment', MODEL, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim().split('\n')[0];
  assert.match(id, /^batch_/);
  assert.match(r.stderr, /6\/6 lines, 1 failed\s+completed/);
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.custom_id), Array.from({ length: N }, (_, i) => `k${i}`));
  const st = await run(['status', id]);
  assert.equal(st.code, 0);
  assert.match(st.stdout, new RegExp(`${id} completed: 5/6 completed, 1 failed`));
  const errs = await run(['download', id, '--errors']);
  assert.equal(errs.code, 0);
  const e = JSON.parse(errs.stdout.trim());
  assert.equal(e.error.line, 6);
  const bad = await run(['status', 'batch_missing']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /HTTP 404/);
});
