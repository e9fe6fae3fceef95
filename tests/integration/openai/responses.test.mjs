// The Responses API through the official openai SDK: responses.create with
// a string, an item list and instructions, previous_response_id over three
// turns (the prefix cache serving the earlier turns), text.format
// json_schema, a full function-tool loop (with previous_response_id and by
// replaying the items), reasoning effort on a router deployment,
// responses.stream + finalResponse() equal to the stored object,
// responses.parse with a zod schema, retrieve / delete / input_items
// pagination, background + cancel + replayed events, another tenant's
// responses answering 404, and the refusals (hosted tool types, encrypted
// reasoning, truncation disabled). One `nuage serve` with a temporary
// database (two tenants with keys) and a configuration with a router; run
// through ../test_server_responses.sh (NUAGE_RESPONSES_TESTS=1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { zodTextFormat } from 'openai/helpers/zod';
import {
  MODEL_FILE, SLOW, Server, tempDir, cleanup, createTenant, createKey, writeConfig, assertCleanLog, sleep,
} from './platform_helpers.mjs';

const ENABLED = process.env.NUAGE_RESPONSES_TESTS === '1';
const SKIP = ENABLED ? false : 'responses tests run through tests/integration/test_server_responses.sh';

let dir, srv, A, B, keyA;
const R1_TEMPLATE = path.join(process.env.NUAGE_SHARED || '', 'templates', 'deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja');

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  const db = path.join(dir, 'nuage.db');
  createTenant(db, 'alpha');
  createTenant(db, 'beta');
  keyA = createKey(db, { tenant: 'alpha' });
  const keyB = createKey(db, { tenant: 'beta' });
  const cfg = path.join(dir, 'nuage.json');
  const deps = [
    { name: 'story', model: MODEL_FILE, context: 2048, kv_memory: '8M' },
    { name: 'deep', model: MODEL_FILE, version: 'd1', context: 512, kv_memory: '2M' },
    { name: 'auto', kind: 'router', router: { targets: { fast: 'story', reasoning: 'deep' } } },
  ];
  // a reasoning deployment: DeepSeek-R1's template opens a <think> block
  if (existsSync(R1_TEMPLATE)) deps.push({ name: 'think', model: MODEL_FILE, context: 2048, kv_memory: '4M', chat_template: R1_TEMPLATE });
  writeConfig(cfg, deps);
  srv = await new Server(['--config', cfg, '--db', db, '--quiet']).ready();
  A = srv.client(keyA);
  B = srv.client(keyB);
});

after(async () => {
  if (SKIP) return;
  if (srv) {
    await srv.stop();
    assertCleanLog(assert, srv);
  }
  cleanup(dir);
});

const M = 'story';

test('responses.create with a string input', { skip: SKIP }, async () => {
  const r = await A.responses.create({ model: M, input: 'Once upon a time', max_output_tokens: 12, temperature: 0 });
  assert.match(r.id, /^resp_/);
  assert.equal(r.object, 'response');
  assert.ok(['completed', 'incomplete'].includes(r.status));
  if (r.status === 'incomplete') assert.equal(r.incomplete_details.reason, 'max_output_tokens');
  assert.equal(r.model, M);
  assert.equal(r.output.length, 1);
  const msg = r.output[0];
  assert.equal(msg.type, 'message');
  assert.match(msg.id, /^msg_/);
  assert.equal(msg.role, 'assistant');
  assert.equal(msg.content[0].type, 'output_text');
  assert.deepEqual(msg.content[0].annotations, []);
  assert.equal(r.output_text, msg.content[0].text);
  assert.ok(r.output_text.length > 0);
  assert.equal(r.usage.output_tokens, 12 >= r.usage.output_tokens ? r.usage.output_tokens : -1);
  assert.ok(r.usage.input_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  assert.equal(typeof r.usage.input_tokens_details.cached_tokens, 'number');
  assert.equal(r.usage.output_tokens_details.reasoning_tokens, 0);
  // settings echoed
  assert.equal(r.max_output_tokens, 12);
  assert.equal(r.temperature, 0);
  assert.equal(r.store, true);
  assert.equal(r.truncation, 'disabled');
  assert.deepEqual(r.text.format, { type: 'text' });
  assert.deepEqual(r.tools, []);
  // greedy decoding: the same call gives the same text
  const again = await A.responses.create({ model: M, input: 'Once upon a time', max_output_tokens: 12, temperature: 0 });
  assert.equal(again.output_text, r.output_text);
  // the chat-completions path gives the same prompt and the same greedy text
  const rr = await A.responses.create({ model: M, instructions: 'Be kind.', input: 'Once upon a time', max_output_tokens: 12, temperature: 0 });
  const cc = await A.chat.completions.create({
    model: M, max_tokens: 12, temperature: 0,
    messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Once upon a time' }],
  });
  assert.equal(rr.usage.input_tokens, cc.usage.prompt_tokens);
  assert.equal(rr.output_text, cc.choices[0].message.content);
});

test('responses.create with an item list and instructions; input_items lists them', { skip: SKIP }, async () => {
  const r = await A.responses.create({
    model: M,
    instructions: 'You tell short stories.',
    input: [
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: 'Tell me about a cat.' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A cat sat.' }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'And then?' }] },
    ],
    max_output_tokens: 8,
    metadata: { case: 'items' },
    user: 'u-1',
  });
  assert.equal(r.instructions, 'You tell short stories.');
  assert.deepEqual(r.metadata, { case: 'items' });
  assert.equal(r.user, 'u-1');
  // POST /v1/responses/input_tokens counts the same prompt, without generating
  const counted = await A.responses.inputTokens.count({
    model: M, instructions: 'You tell short stories.',
    input: [
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: 'Tell me about a cat.' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A cat sat.' }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'And then?' }] },
    ],
  });
  assert.equal(counted.object, 'response.input_tokens');
  assert.equal(counted.input_tokens, r.usage.input_tokens);
  // a chain counts its earlier items and outputs (not their instructions)
  const chained = await A.responses.inputTokens.count({ model: M, previous_response_id: r.id, input: 'More.' });
  const spelled = await A.responses.inputTokens.count({
    model: M,
    input: [
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: 'Tell me about a cat.' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A cat sat.' }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'And then?' }] },
      ...r.output, { role: 'user', content: 'More.' },
    ],
  });
  assert.equal(chained.input_tokens, spelled.input_tokens);
  // instructions alone change the prompt: more input tokens than without
  const bare = await A.responses.create({ model: M, input: r.output_text || 'x', max_output_tokens: 1 });
  assert.ok(r.usage.input_tokens > bare.usage.input_tokens);
  const all = await A.responses.inputItems.list(r.id, { order: 'asc' });
  const items = [];
  for await (const it of all) items.push(it);
  assert.equal(items.length, 4);
  assert.deepEqual(items.map((i) => i.role), ['developer', 'user', 'assistant', 'user']);
  for (const it of items) assert.match(it.id, /^msg_/);
  assert.deepEqual(items[1].content, [{ type: 'input_text', text: 'Tell me about a cat.' }]);
  assert.deepEqual(items[2].content, [{ type: 'output_text', text: 'A cat sat.' }]);
  // pagination: limit, after, order (default desc)
  const p1 = await A.responses.inputItems.list(r.id, { limit: 1 });
  assert.equal(p1.data.length, 1);
  assert.equal(p1.has_more, true);
  assert.equal(p1.data[0].id, items[3].id);
  const raw = (await srv.fetch(`/v1/responses/${r.id}/input_items?limit=1`, { key: keyA })).json;
  assert.equal(raw.object, 'list');
  assert.equal(raw.first_id, items[3].id);
  assert.equal(raw.last_id, items[3].id);
  const p2 = await A.responses.inputItems.list(r.id, { limit: 2, after: raw.last_id });
  assert.deepEqual(p2.data.map((i) => i.id), [items[2].id, items[1].id]);
  assert.equal(p2.has_more, true);
});

test('previous_response_id over three turns: the chain is the prompt and hits the prefix cache', { skip: SKIP }, async () => {
  const t1 = await A.responses.create({ model: M, input: 'Once upon a time there was a dog.', max_output_tokens: 10, temperature: 0 });
  const t2 = await A.responses.create({ model: M, previous_response_id: t1.id, input: 'What was its name?', max_output_tokens: 10, temperature: 0 });
  const t3 = await A.responses.create({ model: M, previous_response_id: t2.id, input: 'Where did it live?', max_output_tokens: 10, temperature: 0 });
  assert.equal(t2.previous_response_id, t1.id);
  assert.equal(t3.previous_response_id, t2.id);
  // each turn's prompt holds the earlier ones
  assert.ok(t2.usage.input_tokens > t1.usage.input_tokens + t1.usage.output_tokens);
  assert.ok(t3.usage.input_tokens > t2.usage.input_tokens + t2.usage.output_tokens);
  // and its prefix is the previous prompt: served from the prefix cache
  assert.ok(t2.usage.input_tokens_details.cached_tokens >= t1.usage.input_tokens - 16,
    `turn 2 cached ${t2.usage.input_tokens_details.cached_tokens} of ${t1.usage.input_tokens}`);
  assert.ok(t3.usage.input_tokens_details.cached_tokens >= t2.usage.input_tokens - 16,
    `turn 3 cached ${t3.usage.input_tokens_details.cached_tokens} of ${t2.usage.input_tokens}`);
  // the same conversation sent as items gives the same prompt length
  const manual = await A.responses.create({
    model: M, max_output_tokens: 1, temperature: 0,
    input: [
      { role: 'user', content: 'Once upon a time there was a dog.' }, ...t1.output,
      { role: 'user', content: 'What was its name?' }, ...t2.output,
      { role: 'user', content: 'Where did it live?' },
    ],
  });
  assert.equal(manual.usage.input_tokens, t3.usage.input_tokens);
  // a missing link is a 404 naming previous_response_id
  await assert.rejects(A.responses.create({ model: M, previous_response_id: 'resp_nope', input: 'x' }),
    (e) => e.status === 404 && e.param === 'previous_response_id');
});

test('text.format json_schema constrains the output', { skip: SKIP }, async () => {
  const r = await A.responses.create({
    model: M, input: 'Give me a color and a digit.', max_output_tokens: 400, temperature: 0,
    text: {
      format: {
        type: 'json_schema', name: 'pick', strict: true,
        schema: {
          type: 'object', additionalProperties: false, required: ['color', 'digit'],
          properties: { color: { type: 'string', enum: ['red', 'green', 'blue'] }, digit: { type: 'integer', minimum: 0, maximum: 9 } },
        },
      },
    },
  });
  assert.equal(r.status, 'completed', JSON.stringify(r));
  const v = JSON.parse(r.output_text);
  assert.ok(['red', 'green', 'blue'].includes(v.color));
  assert.ok(Number.isInteger(v.digit) && v.digit >= 0 && v.digit <= 9);
  assert.equal(r.text.format.type, 'json_schema');
  assert.equal(r.text.format.name, 'pick');
  // json_object
  const o = await A.responses.create({ model: M, input: 'json', max_output_tokens: 40, text: { format: { type: 'json_object' } } });
  if (o.status === 'completed') assert.equal(typeof JSON.parse(o.output_text), 'object');
});

const weatherTool = {
  type: 'function', name: 'get_weather', description: 'Weather of a city', strict: true,
  parameters: {
    type: 'object', additionalProperties: false, required: ['city'],
    properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] } },
  },
};

test('function tools: a full tool loop (previous_response_id, then replayed items)', { skip: SKIP }, async () => {
  const r1 = await A.responses.create({ model: M, input: 'Weather in Paris?', tools: [weatherTool], parallel_tool_calls: false, tool_choice: 'required', max_output_tokens: 400, temperature: 0 });
  assert.equal(r1.status, 'completed', JSON.stringify(r1));
  const calls = r1.output.filter((o) => o.type === 'function_call');
  assert.ok(calls.length >= 1, JSON.stringify(r1.output));
  const call = calls[0];
  assert.match(call.id, /^fc_/);
  assert.match(call.call_id, /^call_/);
  assert.equal(call.name, 'get_weather');
  assert.equal(call.status, 'completed');
  assert.ok(['Paris', 'Oslo'].includes(JSON.parse(call.arguments).city));
  assert.equal(r1.tools[0].name, 'get_weather');
  assert.equal(r1.tool_choice, 'required');
  const outputs = calls.map((c) => ({ type: 'function_call_output', call_id: c.call_id, output: '{"sky":"sunny"}' }));
  // 1. continue the stored conversation
  const r2 = await A.responses.create({
    model: M, previous_response_id: r1.id, input: outputs, tools: [weatherTool], tool_choice: 'none', max_output_tokens: 10,
  });
  assert.ok(['completed', 'incomplete'].includes(r2.status));
  assert.equal(r2.output.filter((o) => o.type === 'function_call').length, 0);
  assert.equal(r2.output[0].type, 'message');
  // 2. stateless: the caller replays every item (store false)
  const r3 = await A.responses.create({
    model: M, store: false, tools: [weatherTool], tool_choice: 'none', max_output_tokens: 10,
    input: [{ role: 'user', content: 'Weather in Paris?' }, ...r1.output, ...outputs],
  });
  assert.equal(r3.store, false);
  assert.equal(r3.usage.input_tokens, r2.usage.input_tokens);
  await assert.rejects(A.responses.retrieve(r3.id), (e) => e.status === 404);
  // 3. earlier outputs by reference (item_reference, as the AI SDK sends them)
  const r5 = await A.responses.create({
    model: M, store: false, tools: [weatherTool], tool_choice: 'none', max_output_tokens: 10,
    input: [{ role: 'user', content: 'Weather in Paris?' }, ...r1.output.map((o) => ({ type: 'item_reference', id: o.id })), ...outputs],
  });
  assert.equal(r5.usage.input_tokens, r2.usage.input_tokens);
  await assert.rejects(B.responses.create({ model: M, input: [{ type: 'item_reference', id: r1.output[0].id }] }),
    (e) => e.status === 404 && e.param === 'input[0].id');
  // a named tool_choice
  const r4 = await A.responses.create({
    model: M, input: 'Oslo', tools: [weatherTool], parallel_tool_calls: false, tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 400, temperature: 0,
  });
  assert.equal(r4.output.find((o) => o.type === 'function_call').name, 'get_weather');
});

test('reasoning.effort on a router deployment picks the deployment', { skip: SKIP }, async () => {
  const hi = await A.responses.create({ model: 'auto', input: 'Think hard', reasoning: { effort: 'high' }, max_output_tokens: 3 });
  assert.equal(hi.model, 'deep');
  assert.equal(hi.reasoning.effort, 'high');
  const lo = await A.responses.create({ model: 'auto', input: 'Hi', reasoning: { effort: 'minimal' }, max_output_tokens: 3 });
  assert.equal(lo.model, 'story');
  await assert.rejects(A.responses.create({ model: 'auto', input: 'Hi', reasoning: { effort: 'extreme' } }),
    (e) => e.status === 400);
});

test('responses.stream: typed events, and finalResponse() equals the stored object', { skip: SKIP }, async () => {
  const stream = A.responses.stream({ model: M, input: 'Once upon a time', max_output_tokens: 16, temperature: 0 });
  const types = [];
  let seq = -1;
  let deltas = '';
  for await (const ev of stream) {
    types.push(ev.type);
    assert.equal(ev.sequence_number, seq + 1);
    seq = ev.sequence_number;
    if (ev.type === 'response.output_text.delta') deltas += ev.delta;
  }
  const fin = await stream.finalResponse();
  assert.equal(types[0], 'response.created');
  assert.equal(types[1], 'response.in_progress');
  for (const t of ['response.output_item.added', 'response.content_part.added', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done'])
    assert.ok(types.includes(t), `${t} in ${types}`);
  assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)));
  assert.equal(deltas, fin.output_text);
  const stored = await A.responses.retrieve(fin.id);
  // (the SDK's stream helper adds `parsed` fields: compare without them)
  const noParsed = (o) => JSON.parse(JSON.stringify(o, (k, v) => (['parsed', 'output_parsed', 'parsed_arguments'].includes(k) ? undefined : v)));
  assert.deepEqual(noParsed(fin), noParsed(stored));
  // the same request not streamed: the same object but for ids and times
  const plain = await A.responses.create({ model: M, input: 'Once upon a time', max_output_tokens: 16, temperature: 0 });
  const strip = (o) => {
    const c = noParsed(o);
    delete c.id; delete c.created_at;
    for (const it of c.output) delete it.id;
    c.usage.input_tokens_details.cached_tokens = 0;
    return c;
  };
  assert.deepEqual(strip(fin), strip(plain));
  // a streamed tool call assembles too
  const ts = A.responses.stream({ model: M, input: 'Weather?', tools: [weatherTool], parallel_tool_calls: false, tool_choice: 'required', max_output_tokens: 400, temperature: 0 });
  const tfin = await ts.finalResponse();
  const fc = tfin.output.find((o) => o.type === 'function_call');
  assert.ok(fc, JSON.stringify(tfin.output));
  assert.deepEqual(noParsed(tfin), noParsed(await A.responses.retrieve(tfin.id)));
  // a call cut by max_output_tokens: every item announced is in the final
  // object (a cut call as status incomplete), each with its .done
  for (const max of [6, 12, 24]) {
    const cs = A.responses.stream({ model: M, input: 'Weather?', tools: [weatherTool], parallel_tool_calls: false, tool_choice: 'required', max_output_tokens: max, temperature: 0 });
    const added = new Set(), done = new Set();
    for await (const ev of cs) {
      if (ev.type === 'response.output_item.added') added.add(ev.item.id);
      if (ev.type === 'response.output_item.done') done.add(ev.item.id);
    }
    const cfin = await cs.finalResponse();
    assert.equal(cfin.status, 'incomplete');
    assert.deepEqual([...added].sort(), cfin.output.map((o) => o.id).sort());
    assert.deepEqual([...done].sort(), [...added].sort());
    for (const o of cfin.output) if (o.type === 'function_call') assert.equal(o.status, 'incomplete');
    assert.deepEqual(noParsed(cfin), noParsed(await A.responses.retrieve(cfin.id)));
  }
});

test('responses.parse with a zod schema', { skip: SKIP }, async () => {
  const Pet = z.object({ kind: z.enum(['cat', 'dog']), legs: z.number().int() });
  const r = await A.responses.parse({
    model: M, input: 'Describe a pet.', max_output_tokens: 400, temperature: 0, text: { format: zodTextFormat(Pet, 'pet') },
  });
  assert.equal(r.status, 'completed', JSON.stringify(r));
  assert.ok(['cat', 'dog'].includes(r.output_parsed.kind));
  assert.ok(Number.isInteger(r.output_parsed.legs));
});

test('retrieve and delete; another tenant sees 404', { skip: SKIP }, async () => {
  const r = await A.responses.create({ model: M, input: 'Hello', max_output_tokens: 4 });
  const got = await A.responses.retrieve(r.id);
  assert.deepEqual(JSON.parse(JSON.stringify(got)), JSON.parse(JSON.stringify(r)));
  // tenant beta: nothing of alpha's exists
  await assert.rejects(B.responses.retrieve(r.id), (e) => e.status === 404);
  await assert.rejects(B.responses.inputItems.list(r.id), (e) => e.status === 404);
  await assert.rejects(B.responses.delete(r.id), (e) => e.status === 404);
  await assert.rejects(B.responses.create({ model: M, previous_response_id: r.id, input: 'x' }),
    (e) => e.status === 404 && e.param === 'previous_response_id');
  await A.responses.delete(r.id);
  await assert.rejects(A.responses.retrieve(r.id), (e) => e.status === 404);
  await assert.rejects(A.responses.delete(r.id), (e) => e.status === 404);
});

test('background: queued, polled to the end, events replayed; cancel stops a long one', { skip: SKIP }, async () => {
  const r = await A.responses.create({ model: M, input: 'Once', background: true, max_output_tokens: 6, temperature: 0 });
  assert.ok(['queued', 'in_progress'].includes(r.status), r.status);
  assert.equal(r.background, true);
  let cur = r;
  for (let i = 0; i < 600 && ['queued', 'in_progress'].includes(cur.status); i++) {
    await sleep(50);
    cur = await A.responses.retrieve(r.id);
  }
  assert.ok(['completed', 'incomplete'].includes(cur.status), cur.status);
  assert.ok(cur.output_text.length > 0);
  // GET ?stream=true replays the events
  const replay = await A.responses.retrieve(r.id, { stream: true });
  const evs = [];
  for await (const ev of replay) evs.push(ev);
  assert.equal(evs[0].type, 'response.created');
  const last = evs.at(-1);
  assert.ok(['response.completed', 'response.incomplete'].includes(last.type));
  assert.deepEqual(last.response, JSON.parse(JSON.stringify(await srv.fetch(`/v1/responses/${r.id}`, { key: keyA }).then((x) => x.json))));
  evs.forEach((ev, i) => assert.equal(ev.sequence_number, i));
  // a long one, cancelled: a schema that forces a long array
  const long = await A.responses.create({
    model: M, input: 'List', background: true, max_output_tokens: 1900,
    text: { format: { type: 'json_schema', name: 'l', strict: true, schema: { type: 'object', additionalProperties: false, required: ['xs'], properties: { xs: { type: 'array', minItems: 300, items: { type: 'integer', minimum: 1000000, maximum: 9999999 } } } } } },
  });
  // while it runs, GET shows the output so far
  let live = null;
  for (let i = 0; i < 200; i++) {
    live = await A.responses.retrieve(long.id);
    if (live.status !== 'in_progress' || live.output_text.length > 0) break;
    await sleep(10);
  }
  assert.equal(live.status, 'in_progress');
  assert.ok(live.output_text.startsWith('{'), live.output_text);
  assert.equal(live.usage, null);
  const c = await A.responses.cancel(long.id);
  assert.equal(c.status, 'cancelled');
  assert.equal((await A.responses.retrieve(long.id)).status, 'cancelled');
  // a foreground response cannot be cancelled
  const fg = await A.responses.create({ model: M, input: 'x', max_output_tokens: 2 });
  await assert.rejects(A.responses.cancel(fg.id), (e) => e.status === 400);
});

test('refusals: hosted tool types, encrypted reasoning, unknown items; truncation', { skip: SKIP }, async () => {
  await assert.rejects(A.responses.create({ model: M, input: 'x', tools: [{ type: 'web_search' }] }),
    (e) => e.status === 400 && e.param === 'tools[0].type' && /web_search/.test(e.message));
  await assert.rejects(A.responses.create({ model: M, input: 'x', tools: [weatherTool, { type: 'file_search', vector_store_ids: ['v'] }] }),
    (e) => e.status === 400 && e.param === 'tools[1].type' && /file_search/.test(e.message));
  await assert.rejects(A.responses.create({ model: M, input: 'x', include: ['reasoning.encrypted_content'] }),
    (e) => e.status === 400 && e.param === 'include[0]' && /encrypted/.test(e.message));
  await assert.rejects(A.responses.create({ model: M, input: [{ type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'xx' }, { role: 'user', content: 'x' }] }),
    (e) => e.status === 400 && /encrypted/i.test(e.message));
  await assert.rejects(A.responses.create({ model: M, input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'http://x' }] }] }),
    (e) => e.status === 400 && e.param === 'input[0].content[0]');
  await assert.rejects(A.responses.create({ model: M, input: 'x', truncation: 'sometimes' }), (e) => e.status === 400 && e.param === 'truncation');
  // 2048-token context: a long conversation
  const turns = [];
  for (let i = 0; i < 160; i++) turns.push({ role: i % 2 ? 'assistant' : 'user', content: `Turn ${i}: the little dog ran to the park and played with a red ball.` });
  turns.push({ role: 'user', content: 'What happened?' });
  await assert.rejects(A.responses.create({ model: M, input: turns, max_output_tokens: 8 }),
    (e) => e.status === 400 && e.code === 'context_length_exceeded' && e.param === 'input');
  const t = await A.responses.create({ model: M, input: turns, max_output_tokens: 8, truncation: 'auto', instructions: 'Keep me.' });
  assert.equal(t.truncation, 'auto');
  assert.ok(t.usage.input_tokens + 8 <= 2048, String(t.usage.input_tokens));
  assert.ok(t.usage.input_tokens > 1500, String(t.usage.input_tokens));
  assert.ok(t.usage.input_tokens > 100);
});

test('Batch API lines with url /v1/responses', { skip: SKIP }, async () => {
  const lines = [1, 2].map((i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/responses', body: { model: M, input: `Story ${i}`, max_output_tokens: 4 } })).join('\n');
  const { toFile } = await import('openai');
  const f = await A.files.create({ file: await toFile(Buffer.from(lines), 'in.jsonl'), purpose: 'batch' });
  const b = await A.batches.create({ input_file_id: f.id, endpoint: '/v1/responses', completion_window: '24h' });
  let cur = b;
  for (let i = 0; i < 1200 && !['completed', 'failed', 'expired', 'cancelled'].includes(cur.status); i++) {
    await sleep(50);
    cur = await A.batches.retrieve(b.id);
  }
  assert.equal(cur.status, 'completed', JSON.stringify(cur));
  assert.equal(cur.request_counts.completed, 2);
  const text = await (await A.files.content(cur.output_file_id)).text();
  const out = text.trim().split('\n').map((l) => JSON.parse(l));
  for (const o of out) {
    assert.equal(o.response.status_code, 200);
    assert.equal(o.response.body.object, 'response');
    assert.match(o.response.body.id, /^resp_/);
  }
});

test('a server without a database keeps responses in its private store, removed at exit', { skip: SKIP }, async () => {
  const tmp = tempDir();
  const s = await new Server(['-m', MODEL_FILE, '--no-db', '--quiet'], { env: { TMPDIR: tmp } }).ready();
  try {
    const c = s.client();
    const r1 = await c.responses.create({ input: 'Once upon a time', max_output_tokens: 4 });
    assert.equal(r1.store, true);
    const r2 = await c.responses.create({ input: 'Then?', previous_response_id: r1.id, max_output_tokens: 4 });
    assert.ok(r2.usage.input_tokens > r1.usage.input_tokens + r1.usage.output_tokens);
    assert.equal((await c.responses.retrieve(r2.id)).id, r2.id);
    const bg = await c.responses.create({ input: 'x', background: true, max_output_tokens: 2 });
    assert.equal(bg.status, 'queued');
    const { readdirSync } = await import('node:fs');
    assert.equal(readdirSync(tmp).filter((f) => f.startsWith('nuage-responses-')).length, 1);
    await s.stop();
    assert.equal(s.exited.code, 0);
    assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('nuage-responses-')), []);
  } finally {
    await s.stop();
    assertCleanLog(assert, s);
    cleanup(tmp);
  }
});

test('reasoning items: streamed reasoning_text, stored, passed back in a chain', { skip: SKIP || (!existsSync(R1_TEMPLATE) && 'needs ../shared/templates') }, async () => {
  const stream = A.responses.stream({ model: 'think', input: 'Why is the sky blue?', max_output_tokens: 24, temperature: 0 });
  const types = new Set();
  let rdeltas = '';
  for await (const ev of stream) {
    types.add(ev.type);
    if (ev.type === 'response.reasoning_text.delta') rdeltas += ev.delta;
  }
  const fin = await stream.finalResponse();
  for (const t of ['response.reasoning_text.delta', 'response.reasoning_text.done']) assert.ok(types.has(t), t);
  const rs = fin.output[0];
  assert.equal(rs.type, 'reasoning');
  assert.match(rs.id, /^rs_/);
  assert.deepEqual(rs.summary, []);
  assert.equal(rs.content[0].type, 'reasoning_text');
  assert.equal(rs.content[0].text, rdeltas);
  assert.ok(rdeltas.length > 0);
  assert.ok(fin.usage.output_tokens_details.reasoning_tokens > 0);
  assert.ok(fin.usage.output_tokens_details.reasoning_tokens <= fin.usage.output_tokens);
  const noParsed = (o) => JSON.parse(JSON.stringify(o, (k, v) => (['parsed', 'output_parsed', 'parsed_arguments'].includes(k) ? undefined : v)));
  assert.deepEqual(noParsed(fin), noParsed(await A.responses.retrieve(fin.id)));
  const plain = await A.responses.create({ model: 'think', input: 'Why is the sky blue?', max_output_tokens: 24, temperature: 0 });
  assert.equal(plain.output[0].content[0].text, rdeltas);
  // the chain carries the reasoning item back (as reasoning_content)
  const t2 = await A.responses.create({ model: 'think', previous_response_id: fin.id, input: 'And at night?', max_output_tokens: 4 });
  assert.ok(t2.usage.input_tokens > fin.usage.input_tokens);
});

test('--response-retention: an expired response is gone (404), also as previous_response_id', { skip: SKIP }, async () => {
  const tmp = tempDir();
  const s = await new Server(['-m', MODEL_FILE, '--db', path.join(tmp, 'r.db'), '--no-auth', '--response-retention', '1', '--quiet']).ready();
  try {
    const c = s.client();
    const r = await c.responses.create({ input: 'Hi', max_output_tokens: 2 });
    assert.equal((await c.responses.retrieve(r.id)).id, r.id);
    await sleep(2100);
    await assert.rejects(c.responses.retrieve(r.id), (e) => e.status === 404);
    await assert.rejects(c.responses.create({ input: 'x', previous_response_id: r.id }), (e) => e.status === 404);
  } finally {
    await s.stop();
    assertCleanLog(assert, s);
    cleanup(tmp);
  }
});
