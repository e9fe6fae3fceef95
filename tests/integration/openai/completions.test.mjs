// /v1/completions: greedy output against llama.cpp's reference
// continuation, prompt forms, echo, legacy logprobs, streaming.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, collect, MODEL, refIds, postJson, REF, tokenIds } from './helpers.mjs';

async function detok(ids) {
  const r = await postJson('/detokenize', { tokens: ids });
  assert.equal(r.status, 200);
  return r.json.content;
}

test('greedy continuation equals llama.cpp\'s (stories260K "once" and "dog")', { skip: REF }, async () => {
  for (const [name, text] of [['once', 'Once upon a time'], ['dog', 'The little dog']]) {
    const prompt = refIds(`stories260K.${name}.tokens.txt`);
    const greedy = refIds(`stories260K.${name}.greedy.txt`);
    // The tokenizer must give llama.cpp's ids for the text prompt.
    const tok = await postJson('/tokenize', { content: text, add_special: true });
    assert.deepEqual(tok.json.tokens, prompt);
    const r = await client.completions.create({ model: MODEL, prompt: text, max_tokens: greedy.length, temperature: 0, ignore_eos: true });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.usage.prompt_tokens, prompt.length);
    assert.equal(r.usage.completion_tokens, greedy.length);
    assert.equal(r.choices[0].finish_reason, 'length');
    // Independent text of the reference: detokenize prompt+continuation
    // (without BOS) and strip the prompt's text.
    const whole = await detok([...prompt.slice(1), ...greedy]);
    assert.ok(whole.startsWith(text));
    assert.equal(r.choices[0].text, whole.slice(text.length));
    // The same prompt given as token ids.
    const r2 = await client.completions.create({ model: MODEL, prompt, max_tokens: greedy.length, temperature: 0, ignore_eos: true });
    assert.equal(r2.choices[0].text, r.choices[0].text);
  }
});

test('a list of prompts gives prompt_index * n + choice indices', async () => {
  const prompts = ['Once upon a time', 'The little dog'];
  const r = await client.completions.create({ model: MODEL, prompt: prompts, max_tokens: 12, temperature: 0, n: 2 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
  for (const [i, p] of prompts.entries()) {
    const alone = await client.completions.create({ model: MODEL, prompt: p, max_tokens: 12, temperature: 0 });
    assert.equal(r.choices[2 * i].text, alone.choices[0].text);
    assert.equal(r.choices[2 * i + 1].text, alone.choices[0].text);
  }
  const ids = await tokenIds('The little dog');
  const r2 = await client.completions.create({ model: MODEL, prompt: [ids, ids], max_tokens: 6, temperature: 0 });
  assert.equal(r2.choices.length, 2);
  assert.equal(r2.usage.prompt_tokens, 2 * ids.length);
});

test('echo and legacy logprobs', async () => {
  const p = 'Once upon a time';
  const r = await client.completions.create({ model: MODEL, prompt: p, max_tokens: 6, temperature: 0, echo: true, logprobs: 2 });
  const c = r.choices[0];
  assert.ok(c.text.startsWith(p));
  const lp = c.logprobs;
  const n = r.usage.prompt_tokens + r.usage.completion_tokens;
  assert.equal(lp.tokens.length, n);
  assert.equal(lp.token_logprobs.length, n);
  assert.equal(lp.text_offset.length, n);
  assert.equal(lp.token_logprobs[0], null);
  assert.equal(lp.top_logprobs[0], null);
  for (let i = 1; i < n; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    assert.ok(Object.keys(lp.top_logprobs[i]).length >= 1);
    assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  }
  // Generated tokens are greedy: each is the best of its top list.
  for (let i = r.usage.prompt_tokens; i < n; i++) {
    const best = Math.max(...Object.values(lp.top_logprobs[i]));
    assert.ok(Math.abs(best - lp.token_logprobs[i]) < 1e-6);
  }
  const plain = await client.completions.create({ model: MODEL, prompt: p, max_tokens: 6, temperature: 0 });
  assert.equal(c.text, p + plain.choices[0].text);
});

test('streaming text_completion chunks with usage', async () => {
  const p = 'The little dog';
  const ref = await client.completions.create({ model: MODEL, prompt: p, max_tokens: 30, temperature: 0 });
  const stream = await client.completions.create({ model: MODEL, prompt: p, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true } });
  const s = await collect(stream, false);
  assert.equal(s.chunks[0].object, 'text_completion');
  assert.equal(s.text[0], ref.choices[0].text);
  assert.equal(s.finish[0], ref.choices[0].finish_reason);
  assert.equal(s.usage.completion_tokens, ref.usage.completion_tokens);
  assert.deepEqual(s.chunks[s.chunks.length - 1].choices, []);
});

test('a shared long prefix is served from the prefix cache', async () => {
  const base = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. '.repeat(4);
  const a = await client.completions.create({ model: MODEL, prompt: `${base}One day she saw a cat.`, max_tokens: 4, temperature: 0 });
  const b = await client.completions.create({ model: MODEL, prompt: `${base}Then a big dog came.`, max_tokens: 4, temperature: 0 });
  assert.ok(a.usage.prompt_tokens > 64);
  assert.ok(b.usage.prompt_tokens_details.cached_tokens > 0, JSON.stringify(b.usage));
  assert.ok(b.usage.prompt_tokens_details.cached_tokens < b.usage.prompt_tokens);
  // Cached KV gives the same output as computing it again.
  const again = await client.completions.create({ model: MODEL, prompt: `${base}One day she saw a cat.`, max_tokens: 4, temperature: 0 });
  assert.equal(again.choices[0].text, a.choices[0].text);
});

test('logit_bias bans the greedy token (llama.cpp\'s first continuation token)', { skip: REF }, async () => {
  const prompt = refIds('stories260K.once.tokens.txt');
  const first = refIds('stories260K.once.greedy.txt')[0]; // 432
  const plain = await client.completions.create({ model: MODEL, prompt, max_tokens: 1, temperature: 0, logprobs: 0 });
  const text = plain.choices[0].logprobs.tokens[0];
  const d = await postJson('/detokenize', { tokens: [first] });
  assert.equal(text, d.json.content);
  const banned = await client.completions.create({ model: MODEL, prompt, max_tokens: 1, temperature: 0, logprobs: 0, logit_bias: { [first]: -100 } });
  assert.notEqual(banned.choices[0].logprobs.tokens[0], text);
  // A positive bias on another token makes it win.
  const forced = await client.completions.create({ model: MODEL, prompt, max_tokens: 1, temperature: 0, logit_bias: { 300: 100 } });
  assert.equal(forced.choices[0].text, (await postJson('/detokenize', { tokens: [403, 300] })).json.content.slice('Once'.length));
});
