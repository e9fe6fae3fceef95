// Streamed tool calls grow as OpenAI streams them: the first delta of a
// call carries index, id, type and name, then function.arguments arrives
// in several fragments while the model writes them (not one fragment at
// the end); no fragment splits a UTF-8 sequence; the fragments add up to
// exactly the arguments a non-streamed request returns, and the openai
// SDK's stream helper (chat.completions.stream) assembles the same call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, client, ask } from './common.mjs';

// Long enough arguments to stream in pieces, with multi-byte characters.
const noteTool = {
  type: 'function',
  function: {
    name: 'take_note',
    description: 'Write a note about a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', enum: ['Zürich', '東京', 'Kraków', '🌧 Oslo'] },
        text: { type: 'string', minLength: 12, maxLength: 40 },
        days: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 2, maxItems: 5 },
      },
      required: ['city', 'text', 'days'],
      additionalProperties: false,
    },
  },
};

const body = (model, extra = {}) => ({
  model, messages: ask, tools: [noteTool], tool_choice: 'required', parallel_tool_calls: false,
  max_tokens: 600, temperature: 0, ...extra,
});

function checkNote(args) {
  const a = JSON.parse(args);
  assert.deepEqual(Object.keys(a), ['city', 'text', 'days']);
  assert.ok(noteTool.function.parameters.properties.city.enum.includes(a.city), a.city);
  return a;
}

// The raw SSE stream (fetch, no SDK): every tool-call delta, as sent.
async function rawDeltas(model) {
  const r = await fetch(`${BASE}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(model, { stream: true })),
  });
  assert.equal(r.status, 200);
  const text = await r.text();
  const deltas = [];
  let finish = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const ch = JSON.parse(line.slice(6));
    const c = ch.choices?.[0];
    if (!c) continue;
    if (c.finish_reason) finish = c.finish_reason;
    for (const d of c.delta?.tool_calls ?? []) deltas.push(d);
  }
  return { deltas, finish };
}

// qwen3: Hermes <tool_call>; llama: bare JSON; plain: the generic envelope
for (const model of ['qwen3', 'llama', 'plain']) {
  test(`${model}: arguments stream in fragments that add up to the non-streamed call`, async () => {
    const plain = await client.chat.completions.create(body(model));
    assert.equal(plain.choices[0].finish_reason, 'tool_calls');
    const want = plain.choices[0].message.tool_calls[0];
    const a = checkNote(want.function.arguments);
    assert.ok(/[^\x00-\x7f]/.test(a.city), 'a multi-byte city');

    const { deltas, finish } = await rawDeltas(model);
    assert.equal(finish, 'tool_calls');
    assert.ok(deltas.length >= 1);
    const first = deltas[0];
    assert.equal(first.index, 0);
    assert.match(first.id, /^call_[0-9a-f]{24}$/);
    assert.equal(first.type, 'function');
    assert.equal(first.function.name, 'take_note');
    assert.equal(typeof first.function.arguments, 'string');
    const frags = deltas.map((d) => d.function?.arguments ?? '');
    for (const d of deltas.slice(1)) {
      assert.equal(d.index, 0);
      assert.equal(d.id, undefined, 'id only in the first delta');
      assert.equal(d.function.name, undefined, 'name only in the first delta');
    }
    // incremental: many fragments, the first ones sent before the arguments were complete
    const nonEmpty = frags.filter((f) => f.length > 0);
    assert.ok(nonEmpty.length >= 5, `only ${nonEmpty.length} argument fragments`);
    assert.notEqual(nonEmpty[0], want.function.arguments);
    // no fragment splits a UTF-8 sequence: a split would reach the client as
    // U+FFFD or a lone surrogate; each fragment is well-formed on its own
    for (const f of frags) {
      assert.ok(!f.includes('\ufffd'), `replacement character in ${JSON.stringify(f)}`);
      assert.ok(f.isWellFormed(), `lone surrogate in ${JSON.stringify(f)}`);
      assert.equal(Buffer.from(f, 'utf8').toString('utf8'), f);
    }
    // exactly the non-streamed arguments (greedy decoding: same tokens)
    assert.equal(frags.join(''), want.function.arguments);
  });

  test(`${model}: the SDK stream helper assembles the same call`, async () => {
    const plain = await client.chat.completions.create(body(model));
    const want = plain.choices[0].message.tool_calls;
    let argDeltas = 0, doneArgs = null;
    const runner = client.chat.completions.stream(body(model));
    runner.on('tool_calls.function.arguments.delta', () => { argDeltas++; });
    runner.on('tool_calls.function.arguments.done', (ev) => { doneArgs = ev.arguments; });
    const final = await runner.finalChatCompletion();
    const got = final.choices[0].message.tool_calls;
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.equal(got.length, want.length);
    assert.equal(got[0].type, 'function');
    assert.equal(got[0].function.name, want[0].function.name);
    assert.equal(got[0].function.arguments, want[0].function.arguments);
    assert.equal(doneArgs, want[0].function.arguments);
    assert.ok(argDeltas >= 5, `${argDeltas} argument delta events`);
  });
}

// Cut by max_tokens inside the arguments: the non-streamed answer keeps the
// arguments written so far (finish_reason "length", as OpenAI), exactly
// what the stream sent and the SDK's stream helper assembles.
test('a call cut by max_tokens: the same partial call streamed and not', async () => {
  for (const model of ['qwen3', 'llama']) {
    const full = await client.chat.completions.create(body(model));
    const n = full.usage.completion_tokens;
    const cut = await client.chat.completions.create(body(model, { max_tokens: n - 4 }));
    const c = cut.choices[0];
    assert.equal(c.finish_reason, 'length');
    assert.equal(c.message.tool_calls.length, 1, JSON.stringify(c.message));
    const partial = c.message.tool_calls[0].function.arguments;
    assert.ok(full.choices[0].message.tool_calls[0].function.arguments.startsWith(partial), partial);
    assert.ok(partial.length > 10);
    assert.ok(!c.message.content, 'no markup as content');
    const final = await client.chat.completions.stream(body(model, { max_tokens: n - 4 })).finalChatCompletion();
    assert.equal(final.choices[0].finish_reason, 'length');
    assert.equal(final.choices[0].message.tool_calls[0].function.arguments, partial);
    assert.equal(final.choices[0].message.tool_calls[0].function.name, 'take_note');
  }
});
