// "strict" per function, as OpenAI defines it: a function with strict:
// true is enforced exactly (objects without additionalProperties get no
// other keys; a schema nuage cannot enforce is a 400 naming the keyword);
// a function without it is best effort: its schema is enforced when nuage
// supports it, and otherwise its arguments are any JSON object (with a
// warning in the server log) instead of the request failing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BASE, client, ask } from './common.mjs';

const unsupported = { type: 'object', properties: { ids: { type: 'array', items: { type: 'integer' }, uniqueItems: true, maxItems: 3 } }, required: ['ids'] };
const fn = (name, parameters, strict) => ({ type: 'function', function: { name, description: name, parameters, ...(strict === undefined ? {} : { strict }) } });

async function post(body) {
  const r = await fetch(`${BASE}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'qwen3', messages: ask, max_tokens: 400, ...body }) });
  return { status: r.status, json: await r.json() };
}

test('strict: true with a keyword nuage cannot enforce is a 400 naming it', async () => {
  const { status, json } = await post({ tools: [fn('pick', unsupported, true)], tool_choice: 'required' });
  assert.equal(status, 400, JSON.stringify(json));
  assert.equal(json.error.param, 'tools');
  assert.match(json.error.message, /pick/);
  assert.match(json.error.message, /uniqueItems/);
  assert.match(json.error.message, /\/properties\/ids/);
});

test('not strict, same schema: best effort, the call is a JSON object', async () => {
  for (const strict of [undefined, false]) {
    const tools = [fn('pick', unsupported, strict), fn('other', { type: 'object', properties: {} }, true)];
    const { status, json } = await post({ tools, tool_choice: { type: 'function', function: { name: 'pick' } }, max_tokens: 200 });
    assert.equal(status, 200, JSON.stringify(json));
    // any JSON object: random weights may well write one until max_tokens,
    // so look at the streamed call as it grows
    const stream = await client.chat.completions.create({ model: 'qwen3', messages: ask, tools, tool_choice: { type: 'function', function: { name: 'pick' } }, max_tokens: 200, stream: true });
    let name = null, args = '', finish = null;
    for await (const ch of stream) {
      const c = ch.choices[0];
      if (c?.finish_reason) finish = c.finish_reason;
      for (const d of c?.delta?.tool_calls ?? []) {
        if (d.function?.name) name = d.function.name;
        args += d.function?.arguments ?? '';
      }
    }
    assert.equal(name, 'pick');
    assert.match(args, /^\{/);
    if (finish === 'tool_calls') {
      const a = JSON.parse(args);
      assert.ok(a !== null && typeof a === 'object' && !Array.isArray(a));
    } else {
      assert.equal(finish, 'length');
    }
  }
  const log = process.env.NUAGE_SERVER_LOG;
  if (log) assert.match(readFileSync(log, 'utf8'), /warning: tool pick: not strict, arguments are any JSON object: .*uniqueItems/);
});

test('strictness is per function: only the strict one refuses undeclared keys', async () => {
  // the same schema, no additionalProperties: the strict function's calls
  // carry exactly the declared key (what random weights write otherwise
  // is free, so only the strict side can be asserted on)
  const params = { type: 'object', properties: { x: { type: 'string', maxLength: 3 } }, required: ['x'] };
  const tools = [fn('loose', params), fn('tight', params, true)];
  for (const model of ['qwen3', 'llama']) {
    const r = await client.chat.completions.create({ model, messages: ask, tools, tool_choice: { type: 'function', function: { name: 'tight' } }, parallel_tool_calls: false, max_tokens: 400, n: 4, seed: 5 });
    for (const c of r.choices) {
      assert.equal(c.finish_reason, 'tool_calls');
      assert.deepEqual(Object.keys(JSON.parse(c.message.tool_calls[0].function.arguments)), ['x']);
    }
    const l = await client.chat.completions.create({ model, messages: ask, tools, tool_choice: { type: 'function', function: { name: 'loose' } }, parallel_tool_calls: false, max_tokens: 400, n: 2, seed: 5 });
    for (const c of l.choices) {
      if (c.finish_reason !== 'tool_calls') continue; // extra keys may run to max_tokens
      const a = JSON.parse(c.message.tool_calls[0].function.arguments);
      assert.equal(typeof a.x, 'string');
      assert.ok([...a.x].length <= 3);
    }
  }
});
