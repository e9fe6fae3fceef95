// /v1/chat/completions through the official SDK: response shapes, streaming
// events, content parts, n, stop sequences, logprobs, seeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, collect, MODEL } from './helpers.mjs';

const messages = [
  { role: 'system', content: 'You tell stories.' },
  { role: 'user', content: 'Tell me about a little dog.' },
];

test('chat completion: shape and usage', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(c.message.content.length > 0);
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  const u = r.usage;
  assert.ok(u.prompt_tokens > 10, 'the template adds tokens around the messages');
  assert.ok(u.completion_tokens >= 1 && u.completion_tokens <= 24);
  if (c.finish_reason === 'length') assert.equal(u.completion_tokens, 24);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.equal(typeof u.prompt_tokens_details.cached_tokens, 'number');
  assert.equal(u.completion_tokens_details.reasoning_tokens, 0);
});

test('content as text parts equals content as a string', async () => {
  const a = await client.chat.completions.create({
    model: MODEL, max_tokens: 20, temperature: 0,
    messages: [{ role: 'user', content: 'Once upon a time' }],
  });
  const b = await client.chat.completions.create({
    model: MODEL, max_completion_tokens: 20, temperature: 0,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Once upon a time' }] }],
  });
  assert.equal(b.choices[0].message.content, a.choices[0].message.content);
  assert.equal(b.usage.prompt_tokens, a.usage.prompt_tokens);
});

test('streaming: role first, finish_reason last, usage chunk, same text as non-streamed', async () => {
  const ref = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 40, temperature: 0 });
  const stream = await client.chat.completions.create({
    model: MODEL, messages, max_tokens: 40, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  const s = await collect(stream, true);
  assert.equal(s.chunks[0].object, 'chat.completion.chunk');
  assert.equal(s.chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(s.chunks.slice(1).every((ch) => ch.choices.every((c) => c.delta.role === undefined)));
  assert.equal(s.text[0], ref.choices[0].message.content);
  assert.equal(s.finish[0], ref.choices[0].finish_reason);
  const last = s.chunks[s.chunks.length - 1];
  assert.deepEqual(last.choices, []);
  // cached_tokens may differ: the second request can reuse the first one's prefix.
  assert.equal(last.usage.completion_tokens, ref.usage.completion_tokens);
  assert.equal(last.usage.prompt_tokens, ref.usage.prompt_tokens);
  assert.ok(s.chunks.every((ch) => ch.id === s.chunks[0].id));
});

test('n = 3 choices, each with its own finish_reason; greedy choices agree', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0, n: 3 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(r.choices[1].message.content, r.choices[0].message.content);
  assert.equal(r.choices[2].message.content, r.choices[0].message.content);
  const per = r.usage.completion_tokens / 3;
  assert.ok(Number.isInteger(per) && per >= 1);
  const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0, n: 3, stream: true });
  const s = await collect(stream, true);
  for (const i of [0, 1, 2]) {
    assert.equal(s.text[i], r.choices[0].message.content);
    assert.ok(s.finish[i]);
  }
});

test('stop sequences end the output before the stop string', async () => {
  const full = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 60, temperature: 0 });
  const text = full.choices[0].message.content;
  // Pick a stop string from the middle of the greedy output: a piece that
  // spans token boundaries (two words).
  const words = text.split(' ');
  assert.ok(words.length > 6, `need some output: ${JSON.stringify(text)}`);
  const stop = `${words[3]} ${words[4]}`;
  const cut = text.indexOf(stop);
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 60, temperature: 0, stop: [stop, 'zzzz-never'] });
  assert.equal(r.choices[0].message.content, text.slice(0, cut));
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage.completion_tokens < full.usage.completion_tokens);
  const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 60, temperature: 0, stop, stream: true });
  const s = await collect(stream, true);
  assert.equal(s.text[0], text.slice(0, cut));
  assert.equal(s.finish[0], 'stop');
});

test('logprobs and top_logprobs', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  const joined = [];
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    // greedy: the chosen token is the most likely one
    assert.equal(t.top_logprobs[0].token, t.token);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    assert.ok(t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob);
    // A token that is not valid UTF-8 on its own (a byte of a longer
    // character) is written "\\xHH"; its bytes are the raw ones.
    const raw = /^(\\x[0-9a-f]{2})+$/.test(t.token)
      ? t.token.split('\\x').slice(1).map((h) => parseInt(h, 16)) : [...Buffer.from(t.token, 'utf8')];
    assert.deepEqual(t.bytes, raw);
    joined.push(Buffer.from(t.bytes));
  }
  assert.equal(Buffer.concat(joined).toString('utf8').trimStart(), r.choices[0].message.content.trimStart());
});

test('seeded sampling is reproducible, different seeds differ', async () => {
  const req = { model: MODEL, messages, max_tokens: 40, temperature: 1.0, top_p: 0.95 };
  const a = await client.chat.completions.create({ ...req, seed: 1234 });
  const b = await client.chat.completions.create({ ...req, seed: 1234 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const outs = new Set();
  for (const seed of [1, 2, 3, 4]) outs.add((await client.chat.completions.create({ ...req, seed })).choices[0].message.content);
  assert.ok(outs.size >= 2, 'four seeds gave one output');
});

test('chat_template_kwargs and unknown fields are accepted', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages, max_tokens: 4, temperature: 0,
    chat_template_kwargs: { enable_thinking: false }, some_future_field: { a: 1 }, user: 'u-1',
    frequency_penalty: 0.5, presence_penalty: -0.5, top_k: 40, min_p: 0.05, repetition_penalty: 1.1,
  });
  assert.equal(r.choices.length, 1);
});
