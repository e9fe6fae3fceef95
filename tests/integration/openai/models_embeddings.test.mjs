// /v1/models, /v1/embeddings, /tokenize, /detokenize, /health, /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { client, MODEL, postJson, refIds, health, metrics, BASE, REF, tokenIds } from './helpers.mjs';

test('models list and retrieve; unknown model is 404 model_not_found', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, [MODEL]);
  const m = await client.models.retrieve(MODEL);
  assert.equal(m.id, MODEL);
  assert.equal(m.object, 'model');
  await assert.rejects(client.models.retrieve('no-such-model'), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }), (e) => {
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    assert.equal(e.param, 'model');
    return true;
  });
});

function norm(v) { return Math.sqrt(v.reduce((s, x) => s + x * x, 0)); }

test('embeddings: unit vectors, float and base64 agree, batch = singles', async () => {
  const f = await client.embeddings.create({ model: MODEL, input: 'The little dog', encoding_format: 'float' });
  assert.equal(f.object, 'list');
  assert.equal(f.data.length, 1);
  const v = f.data[0].embedding;
  assert.equal(v.length, 64); // stories260K (and the bare clone's random model): n_embd 64
  assert.ok(Math.abs(norm(v) - 1) < 1e-4);
  const dogIds = await tokenIds('The little dog');
  assert.equal(f.usage.prompt_tokens, dogIds.length);
  // The SDK asks for base64 by default and decodes it to floats.
  const b = await client.embeddings.create({ model: MODEL, input: 'The little dog' });
  assert.equal(b.data[0].embedding.length, 64);
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(b.data[0].embedding[i] - v[i]) < 1e-6);
  // Raw base64 is little-endian float32.
  const raw = await postJson('/v1/embeddings', { input: 'The little dog', encoding_format: 'base64' });
  const buf = Buffer.from(raw.json.data[0].embedding, 'base64');
  assert.equal(buf.length, 256);
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(buf.readFloatLE(4 * i) - v[i]) < 1e-6);
  // Several inputs, as strings and as token ids.
  const texts = ['Once upon a time', 'The little dog', 'A cat sat'];
  const many = await client.embeddings.create({ model: MODEL, input: texts, encoding_format: 'float' });
  assert.deepEqual(many.data.map((d) => d.index), [0, 1, 2]);
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(many.data[1].embedding[i] - v[i]) < 1e-5);
  const ids = await client.embeddings.create({ model: MODEL, input: dogIds, encoding_format: 'float' });
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(ids.data[0].embedding[i] - v[i]) < 1e-5);
  // Different texts give different vectors.
  const dot = many.data[0].embedding.reduce((s, x, i) => s + x * many.data[2].embedding[i], 0);
  assert.ok(dot < 0.99999);
});

test('tokenize / detokenize round trip with llama.cpp ids', { skip: REF }, async () => {
  const t = await postJson('/tokenize', { content: 'Once upon a time', add_special: true });
  assert.equal(t.status, 200);
  assert.deepEqual(t.json.tokens, refIds('stories260K.once.tokens.txt'));
  const plain = await postJson('/tokenize', { content: 'Once upon a time' });
  assert.deepEqual(plain.json.tokens, refIds('stories260K.once.tokens.txt').slice(1));
  const pieces = await postJson('/tokenize', { content: 'Once upon', with_pieces: true });
  assert.ok(pieces.json.tokens.every((p) => typeof p.id === 'number' && typeof p.piece === 'string'));
  const d = await postJson('/detokenize', { tokens: plain.json.tokens });
  assert.equal(d.json.content.trimStart(), 'Once upon a time');
  const bad = await postJson('/detokenize', { tokens: [1, 99999] });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'tokens[1]');
});

test('health and Prometheus metrics', async () => {
  const h = await health();
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'ok');
  assert.match(h.json.version, /^\d+\.\d+\.\d+$/); // the release (nuage --version)
  assert.deepEqual(Object.keys(h.json).sort(), ['status', 'version']);
  await client.completions.create({ model: MODEL, prompt: 'Hi', max_tokens: 3, temperature: 0 });
  const r = await fetch(`${BASE}/metrics`);
  assert.match(r.headers.get('content-type'), /^text\/plain/);
  const m = await metrics();
  assert.ok(m['nuage_http_requests_total{code="200"}'] >= 1);
  assert.ok(m.nuage_generated_tokens_total >= 3);
  assert.ok(m.nuage_prompt_tokens_total >= 1);
  assert.ok(m.nuage_kv_blocks_total > 0);
  assert.equal(m.nuage_kv_blocks_free + m.nuage_kv_blocks_used + m.nuage_kv_blocks_cached, m.nuage_kv_blocks_total);
  assert.ok(m.nuage_time_to_first_token_seconds_count >= 1);
  assert.equal(m['nuage_time_to_first_token_seconds_bucket{le="+Inf"}'], m.nuage_time_to_first_token_seconds_count);
  assert.ok(m.nuage_inter_token_latency_seconds_count >= 2);
  assert.equal(typeof m.nuage_queue_length, 'number');
  assert.equal(typeof m.nuage_running_sequences, 'number');
});
