// Load behaviour: 32 concurrent greedy streams give exactly what each
// gives alone; a client that disconnects mid-stream frees its KV blocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, collect, MODEL, metrics, sleep, health } from './helpers.mjs';

const subjects = ['dog', 'cat', 'bird', 'girl', 'boy', 'tree', 'ball', 'car', 'fish', 'sun', 'moon', 'frog',
  'bear', 'duck', 'king', 'cake', 'boat', 'star', 'lion', 'bee', 'toy', 'hat', 'box', 'park', 'rain', 'cow',
  'pig', 'owl', 'fox', 'bus', 'kite', 'shoe'];

test('32 concurrent greedy streams equal the same requests run alone', async () => {
  const reqs = subjects.map((s, i) => ({
    model: MODEL, prompt: `Once upon a time there was a ${s}.`, max_tokens: 24 + (i % 5) * 8, temperature: 0,
  }));
  const alone = [];
  for (const r of reqs) alone.push((await client.completions.create(r)).choices[0].text);
  const streams = await Promise.all(reqs.map((r) => client.completions.create({ ...r, stream: true, stream_options: { include_usage: true } })));
  const results = await Promise.all(streams.map((s) => collect(s, false)));
  for (let i = 0; i < reqs.length; i++) {
    assert.equal(results[i].text[0], alone[i], `stream ${i} differs`);
    assert.ok(results[i].usage.completion_tokens >= 1);
  }
  // Chat too, fewer of them.
  const chats = subjects.slice(0, 8).map((s) => ({ model: MODEL, messages: [{ role: 'user', content: `Tell me about a ${s}.` }], max_tokens: 20, temperature: 0 }));
  const chatAlone = [];
  for (const c of chats) chatAlone.push((await client.chat.completions.create(c)).choices[0].message.content);
  const chatStreams = await Promise.all(chats.map((c) => client.chat.completions.create({ ...c, stream: true })));
  const chatRes = await Promise.all(chatStreams.map((s) => collect(s, true)));
  for (let i = 0; i < chats.length; i++) assert.equal(chatRes[i].text[0], chatAlone[i]);
});

async function waitFor(pred, ms) {
  const end = Date.now() + ms;
  let m;
  while (Date.now() < end) {
    m = await metrics();
    if (pred(m)) return m;
    await sleep(50);
  }
  return m;
}

test('a client that disconnects mid-stream gets its KV blocks freed', async () => {
  const before = await waitFor((m) => m.nuage_running_sequences === 0, 10_000);
  const cancelledBefore = before.nuage_requests_cancelled_total;
  // 8 choices of 1900 tokens: long enough that the disconnect comes first.
  const stream = await client.completions.create({
    model: MODEL, prompt: 'Once upon a time', max_tokens: 1900, n: 8, temperature: 0.8, ignore_eos: true, stream: true,
  });
  let n = 0;
  for await (const ch of stream) {
    if (ch.choices[0]?.text) n++;
    if (n === 40) break; // leaving the loop aborts the HTTP request
  }
  assert.equal(n, 40);
  const after = await waitFor((m) => m.nuage_running_sequences === 0 && m.nuage_kv_blocks_used === 0, 10_000);
  assert.equal(after.nuage_running_sequences, 0);
  assert.equal(after.nuage_kv_blocks_used, 0, 'blocks of the dropped stream are back in the pool');
  assert.equal(after.nuage_kv_blocks_free + after.nuage_kv_blocks_cached, after.nuage_kv_blocks_total);
  assert.ok(after.nuage_requests_cancelled_total >= cancelledBefore + 1);
  // Generation stopped: fewer tokens than the 8 x 1900 asked for.
  assert.ok(after.nuage_generated_tokens_total - before.nuage_generated_tokens_total < 8 * 1900);
  const later = await metrics();
  await sleep(300);
  const later2 = await metrics();
  assert.equal(later2.nuage_generated_tokens_total, later.nuage_generated_tokens_total);
  assert.equal((await health()).status, 200);
});

test('a non-streaming client that disconnects is cancelled too', async () => {
  const ac = new AbortController();
  const before = await metrics();
  const p = client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 1900, n: 8, temperature: 0.8, ignore_eos: true }, { signal: ac.signal });
  await waitFor((m) => m.nuage_running_sequences === 1, 10_000);
  ac.abort();
  await assert.rejects(p);
  const after = await waitFor((m) => m.nuage_running_sequences === 0 && m.nuage_kv_blocks_used === 0, 10_000);
  assert.equal(after.nuage_kv_blocks_used, 0);
  assert.ok(after.nuage_generated_tokens_total - before.nuage_generated_tokens_total < 8 * 1900);
});
