// Harmony (gpt-oss) through the real server and the openai SDK: the
// "gptoss" deployment serves random weights with gpt-oss's own chat
// template (openai-gpt-oss-120b.jinja), so the tool format is harmony and
// everything the model writes goes through the harmony channel parser.
// Random weights write junk, so the tests check what the grammar and the
// parser guarantee -- calls valid against their schema, answers valid
// against the response_format, no harmony markup in content or
// reasoning_content, streamed or not -- and that reasoning_effort reaches
// the template ("Reasoning: high" changes the prompt by exactly the tokens
// of that line), also through the router deployment "auto".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, client, weatherTool, timeTool, checkCall, ask } from './common.mjs';

const model = 'gptoss';
// the same checks on the gpt-oss architecture itself (rand-gptoss-f32)
// when the server serves it as "gptoss-arch"
const served = (await client.models.list()).data.map((m) => m.id);
const MODELS = ['gptoss', ...(served.includes('gptoss-arch') ? ['gptoss-arch'] : [])];
// what must never reach a client: harmony's special tokens and headers
const MARKUP = /<\|(start|end|message|channel|constrain|call|return)\|>|to=functions\.|<\|channel/;

function noMarkup(what, s) {
  if (s == null) return;
  assert.equal(typeof s, 'string');
  assert.ok(!MARKUP.test(s), `harmony markup leaked into ${what}: ${JSON.stringify(s)}`);
}

test('models: the gpt-oss template is detected as harmony', async () => {
  const list = await client.models.list();
  const m = list.data.find((d) => d.id === model);
  assert.equal(m.meta.tool_format, 'harmony');
});

// A forced-call choice: a valid call, or -- random weights may stay in
// the analysis channel until max_tokens -- cut reasoning, never junk or
// markup. Returns whether it is a call.
function forcedChoice(c, name) {
  noMarkup('content', c.message.content);
  noMarkup('reasoning_content', c.message.reasoning_content);
  if (c.finish_reason !== 'tool_calls') {
    assert.equal(c.finish_reason, 'length', JSON.stringify(c.message));
    assert.equal(c.message.tool_calls, undefined);
    assert.ok(!c.message.content, 'a cut forced call has no content');
    return false;
  }
  assert.equal(c.message.tool_calls.length, 1);
  checkCall(c.message.tool_calls[0], name ?? c.message.tool_calls[0].function.name);
  return true;
}

for (const model of MODELS) {
  // gptoss (llama weights) calls at once under these seeds; the gpt-oss
  // architecture's random weights often reason until max_tokens, so it is
  // sampled several times and must call at least once
  const strict = model === 'gptoss';
  const many = strict ? {} : { n: 6, seed: 21, temperature: 1 };

  test(`${model}: tool_choice required forces one valid call, finish_reason tool_calls, no markup`, async () => {
    const r = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool, timeTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 600, temperature: 0, ...many });
    const calls = r.choices.filter((c) => forcedChoice(c)).length;
    assert.ok(strict ? calls === r.choices.length : calls >= 1, `${calls} calls`);
  });

  test(`${model}: a named function, several choices`, async () => {
    const r = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool, timeTool], tool_choice: { type: 'function', function: { name: 'get_time' } }, max_tokens: 600, n: 2, seed: 3, ...many });
    const calls = r.choices.filter((c) => forcedChoice(c, 'get_time')).length;
    assert.ok(strict ? calls === r.choices.length : calls >= 1, `${calls} calls`);
  });

  test(`${model}: streamed call: name then arguments; no markup in any content or reasoning delta`, async () => {
    const stream = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 600, stream: true, temperature: 0, ...many });
    const st = {};
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        const x = (st[ch.index] ??= { args: '', name: null, finish: null });
        noMarkup('a content delta', ch.delta.content);
        noMarkup('a reasoning_content delta', ch.delta.reasoning_content);
        for (const t of ch.delta.tool_calls ?? []) {
          if (t.function?.name) x.name = t.function.name;
          if (t.function?.arguments) x.args += t.function.arguments;
        }
        if (ch.finish_reason) x.finish = ch.finish_reason;
      }
    }
    let calls = 0;
    for (const x of Object.values(st)) {
      if (x.finish !== 'tool_calls') { assert.equal(x.finish, 'length'); assert.equal(x.name, null); continue; }
      assert.equal(x.name, 'get_weather');
      checkCall({ id: 'call_' + '0'.repeat(24), type: 'function', function: { name: x.name, arguments: x.args } }, 'get_weather');
      calls++;
    }
    assert.ok(strict ? calls === 1 : calls >= 1, `${calls} calls`);
  });

  test(`${model}: response_format json_schema constrains the final channel`, async () => {
    const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 99 } }, required: ['n'], additionalProperties: false };
    // random weights may stay in the analysis channel until max_tokens:
    // every choice is either a complete answer or cut reasoning, never junk
    const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Pick a number.' }], response_format: { type: 'json_schema', json_schema: { name: 'pick', strict: true, schema } }, max_tokens: 120, n: 8, seed: 11, temperature: 1 });
    let answered = 0;
    for (const c of r.choices) {
      noMarkup('content', c.message.content);
      noMarkup('reasoning_content', c.message.reasoning_content);
      if (c.finish_reason === 'stop') {
        const o = JSON.parse(c.message.content);
        assert.ok(Number.isInteger(o.n) && o.n >= 0 && o.n <= 99, c.message.content);
        answered++;
      } else {
        assert.equal(c.finish_reason, 'length');
      }
    }
    assert.ok(answered >= 1, 'no choice reached the final channel');
    // analysis tokens are counted as reasoning, the answer's are not
    const reasoned = r.choices.some((c) => (c.message.reasoning_content ?? '').length > 0);
    const rt = r.usage.completion_tokens_details.reasoning_tokens;
    assert.ok(reasoned ? rt > 0 : rt === 0, `reasoning_tokens ${rt}`);
    assert.ok(rt < r.usage.completion_tokens);
  });
}

async function promptTokens(body) {
  const r = await fetch(`${BASE}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1, ...body }) });
  assert.equal(r.status, 200, await r.clone().text());
  return { n: (await r.json()).usage.prompt_tokens, router: r.headers.get('x-nuage-router') };
}

async function tokens(text) {
  const r = await fetch(`${BASE}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, content: text }) });
  return (await r.json()).tokens.length;
}

test('harmony: reasoning_effort and reasoning.effort reach the template, also behind a router', async () => {
  const line = {};
  for (const e of ['low', 'medium', 'high']) line[e] = await tokens(`Reasoning: ${e}\n\n`);
  const p = {};
  for (const e of ['low', 'medium', 'high']) p[e] = (await promptTokens({ model, reasoning_effort: e })).n;
  // the prompts differ by exactly the "Reasoning: ..." line
  assert.equal(p.high - p.medium, line.high - line.medium);
  assert.equal(p.low - p.medium, line.low - line.medium);
  assert.notEqual(p.high, p.low);
  assert.equal((await promptTokens({ model })).n, p.medium, 'the template default is medium');
  assert.equal((await promptTokens({ model, reasoning: { effort: 'high' } })).n, p.high);
  assert.equal((await promptTokens({ model, reasoning_effort: 'minimal' })).n, p.low, 'minimal is low');
  // chat_template_kwargs win over the request field
  assert.equal((await promptTokens({ model, reasoning_effort: 'high', chat_template_kwargs: { reasoning_effort: 'low' } })).n, p.low);
  // a deployment's default level ("thinking": {"default": "low"}) reaches it too
  assert.equal((await promptTokens({ model: 'gptoss-low' })).n, p.low);
  assert.equal((await promptTokens({ model: 'gptoss-low', reasoning_effort: 'high' })).n, p.high);
  // the router sends high to gptoss, and the level still reaches the template
  const viaRouter = await promptTokens({ model: 'auto', reasoning_effort: 'high' });
  assert.equal(viaRouter.router, 'auto');
  assert.equal(viaRouter.n, p.high);
});

test('harmony: a tool loop with the earlier turn reasoning renders it (analysis before the call)', async () => {
  const call = { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' } };
  const turn = (extra) => [...ask, { role: 'assistant', content: null, tool_calls: [call], ...extra }, { role: 'tool', tool_call_id: 'call_1', content: '21 C' }];
  const without = await client.chat.completions.create({ model, messages: turn({}), tools: [weatherTool], max_tokens: 1 });
  const withR = await client.chat.completions.create({ model, messages: turn({ reasoning_content: 'I need the weather tool.' }), tools: [weatherTool], max_tokens: 1 });
  const extra = await tokens('<|start|>assistant<|channel|>analysis<|message|>I need the weather tool.<|end|>');
  assert.ok(withR.usage.prompt_tokens > without.usage.prompt_tokens);
  assert.ok(Math.abs(withR.usage.prompt_tokens - without.usage.prompt_tokens - extra) <= 1,
    `${withR.usage.prompt_tokens} - ${without.usage.prompt_tokens} vs ${extra}`);
});

for (const model of MODELS) {
  test(`${model}: tool_choice auto and no tools: content or well-formed calls, never markup`, async () => {
    const r = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool], max_tokens: 60, n: 4, seed: 9 });
    for (const c of r.choices) {
      if (c.finish_reason === 'tool_calls') for (const call of c.message.tool_calls) checkCall(call, 'get_weather');
      else assert.equal(c.message.tool_calls, undefined);
      noMarkup('content', c.message.content);
      noMarkup('reasoning_content', c.message.reasoning_content);
    }
    const plain = await client.chat.completions.create({ model, messages: ask, max_tokens: 40, seed: 4 });
    assert.equal(typeof plain.choices[0].message.content, 'string');
    noMarkup('content', plain.choices[0].message.content);
  });
}

test('harmony: a full two-turn loop sends the SDK message (reasoning included) back', async () => {
  const first = await client.chat.completions.create({ model, messages: ask, tools: [weatherTool], tool_choice: 'required', max_tokens: 600, seed: 5 });
  const msg = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  const messages = [...ask, msg, { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: '{"temp": 21}' }];
  const second = await client.chat.completions.create({ model, messages, tools: [weatherTool], max_tokens: 16 });
  assert.ok(['stop', 'length', 'tool_calls'].includes(second.choices[0].finish_reason));
  noMarkup('content', second.choices[0].message.content);
});
