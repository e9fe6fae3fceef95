// Malformed and invalid requests: each gets its 4xx with OpenAI's error
// shape (status, type, code, param as the SDK parses them) and the server
// keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { client, MODEL, postJson, health, BASE } from './helpers.mjs';

const msgs = [{ role: 'user', content: 'Hello' }];

async function expectApiError(promise, status, param, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    assert.equal(e.status, status, e.message);
    if (param !== undefined) assert.equal(e.param, param, e.message);
    if (code !== undefined) assert.equal(e.code, code, e.message);
    assert.equal(typeof e.error?.message, 'string');
    return true;
  });
}

test('parameter types and ranges are validated with the param named', async () => {
  const chat = (extra) => client.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 4, ...extra });
  await expectApiError(chat({ temperature: 3 }), 400, 'temperature');
  await expectApiError(chat({ temperature: -0.1 }), 400, 'temperature');
  await expectApiError(chat({ temperature: '0.5' }), 400, 'temperature');
  await expectApiError(chat({ top_p: 1.5 }), 400, 'top_p');
  await expectApiError(chat({ presence_penalty: 2.5 }), 400, 'presence_penalty');
  await expectApiError(chat({ frequency_penalty: -3 }), 400, 'frequency_penalty');
  await expectApiError(chat({ n: 0 }), 400, 'n');
  await expectApiError(chat({ n: 1000 }), 400, 'n');
  await expectApiError(chat({ max_tokens: 0 }), 400, 'max_tokens');
  await expectApiError(chat({ max_tokens: 1.5 }), 400, 'max_tokens');
  await expectApiError(chat({ max_completion_tokens: -1 }), 400, 'max_completion_tokens');
  await expectApiError(chat({ top_logprobs: 3 }), 400, 'top_logprobs');
  await expectApiError(chat({ logprobs: true, top_logprobs: 21 }), 400, 'top_logprobs');
  await expectApiError(chat({ logprobs: 'yes' }), 400, 'logprobs');
  await expectApiError(chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 400, 'stop');
  await expectApiError(chat({ stop: 5 }), 400, 'stop');
  await expectApiError(chat({ logit_bias: { 99999: 1 } }), 400, 'logit_bias.99999');
  await expectApiError(chat({ logit_bias: { abc: 1 } }), 400, 'logit_bias.abc');
  await expectApiError(chat({ logit_bias: { 5: 101 } }), 400, 'logit_bias.5');
  await expectApiError(chat({ seed: 'x' }), 400, 'seed');
  await expectApiError(chat({ stream_options: { include_usage: true } }), 400, 'stream_options');
  await expectApiError(chat({ max_tokens: 1e15 }), 400, 'messages', 'context_length_exceeded');
  // issue 12: the largest int64 must not overflow the error message's arithmetic
  const big = await postJson('/v1/chat/completions', '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9223372036854775807}');
  assert.equal(big.status, 400, big.text);
  assert.equal(big.json.error.code, 'context_length_exceeded');
  assert.match(big.json.error.message, /9223372036854775807/);
  const cbig = await postJson('/v1/completions', '{"prompt": "hi", "max_tokens": 9223372036854775807}');
  assert.equal(cbig.status, 400, cbig.text);
  assert.equal(cbig.json.error.code, 'context_length_exceeded');
  const seed = await postJson('/v1/chat/completions', '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "n": 2, "seed": 9223372036854775807}');
  assert.equal(seed.status, 200, seed.text);
});

test('messages are validated', async () => {
  const chat = (messages) => client.chat.completions.create({ model: MODEL, messages, max_tokens: 4 });
  await expectApiError(chat([]), 400, 'messages');
  await expectApiError(chat([{ role: 'user', content: 'a' }, { role: 'wizard', content: 'b' }]), 400, 'messages[1].role');
  await expectApiError(chat([{ content: 'a' }]), 400, 'messages[0].role');
  await expectApiError(chat([{ role: 'user' }]), 400, 'messages[0].content');
  await expectApiError(chat([{ role: 'user', content: 42 }]), 400, 'messages[0].content');
  await expectApiError(chat([{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }]), 400, 'messages[0].content[0].type');
  await expectApiError(chat([{ role: 'user', content: [{ type: 'text' }] }]), 400, 'messages[0].content[0].text');
  await expectApiError(chat('hello'), 400, 'messages');
  // developer and tool roles are accepted
  const ok = await client.chat.completions.create({ model: MODEL, max_tokens: 2, messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: 'hi' }] });
  assert.equal(ok.choices.length, 1);
});

test('over-long prompts: context_length_exceeded', async () => {
  const long = 'Once upon a time there was a dog. '.repeat(400); // > 2048 tokens
  await expectApiError(client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: long }], max_tokens: 4 }), 400, undefined, 'context_length_exceeded');
  await expectApiError(client.completions.create({ model: MODEL, prompt: long, max_tokens: 4 }), 400, 'prompt', 'context_length_exceeded');
  await expectApiError(client.embeddings.create({ model: MODEL, input: long }), 400, 'input', 'context_length_exceeded');
  await expectApiError(client.completions.create({ model: MODEL, prompt: [1, 2, 100000], max_tokens: 4 }), 400, 'prompt');
  await expectApiError(client.embeddings.create({ model: MODEL, input: '' }), 400, 'input');
});

test('raw HTTP: bad JSON, wrong types, invalid UTF-8, huge numbers, routes, methods, body limit', async () => {
  const cases = [
    ['{"messages": [', 400],
    ['', 400],
    ['[1,2,3]', 400],
    ['{"model": "x" "messages": []}', 400],
    ['{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 99999999999999999999999999}', 400],
    ['{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}', 400],
    ['{"messages": [{"role": "user", "content": "\\ud800"}]}', 400],
    ['{"messages": [{"role": "user", "content": "a\\u0000b"}]}', 400],
    ['{"messages": {"role": "user"}}', 400],
  ];
  for (const [body, status] of cases) {
    const r = await postJson('/v1/chat/completions', body);
    assert.equal(r.status, status, `${body} -> ${r.status} ${r.text}`);
    assert.equal(typeof r.json.error.message, 'string');
    assert.equal(r.json.error.type, 'invalid_request_error');
  }
  // Invalid UTF-8 bytes inside a JSON string.
  const bytes = Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]);
  const u = await postJson('/v1/chat/completions', new Uint8Array(bytes));
  assert.equal(u.status, 400);
  // Unknown route and wrong method.
  const nf = await postJson('/v1/nothing', {});
  assert.equal(nf.status, 404);
  const get = await fetch(`${BASE}/v1/chat/completions`);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  const post = await postJson('/health', {});
  assert.equal(post.status, 405);
  // Body over the limit (the test server runs with --max-body 1M).
  const big = await postJson('/v1/completions', JSON.stringify({ prompt: 'x'.repeat(2 * 1024 * 1024) }));
  assert.equal(big.status, 413);
  // Still serving.
  assert.equal((await health()).status, 200);
  const r = await client.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 3 });
  assert.equal(r.choices.length, 1);
});
