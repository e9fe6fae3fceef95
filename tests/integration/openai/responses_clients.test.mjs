// The Responses API (POST /v1/responses) driven by the client libraries
// that use it by default, unchanged: the @openai/agents SDK's default run
// (OpenAIResponsesModel) with a function tool (full tool loop, plain and
// streamed) and with a zod outputType; the Vercel AI SDK's default
// openai(model) provider (AI SDK 6: Responses) with generateText,
// streamText (text and tool calls) and generateObject; LangChain's
// ChatOpenAI with useResponsesApi: true (invoke, stream, bindTools,
// withStructuredOutput).
//
// Runs against the server that tests/integration/test_server_tools.sh
// starts (random-weight "qwen3" and "llama" with their real templates),
// passed as NUAGE_RESPONSES_CLIENTS_URL; skipped otherwise, and every test
// reports skipped when the server answers /v1/responses with 404 (a build
// without the Responses API). Random weights write junk: calls are forced
// with tool_choice "required" and answers with a JSON schema, and the
// tests check structure and validity, never content.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { z } from 'zod';
import { Agent, run, tool, setTracingDisabled, OpenAIResponsesModel, setDefaultOpenAIClient } from '@openai/agents';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText, generateObject, tool as aiTool, stepCountIs } from 'ai';
import { ChatOpenAI } from '@langchain/openai';

const URL = process.env.NUAGE_RESPONSES_CLIENTS_URL;
let why = URL ? null : 'run through tests/integration/test_server_tools.sh (NUAGE_RESPONSES_CLIENTS_URL)';

before(async () => {
  if (why) return;
  const r = await fetch(`${URL}/v1/responses`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen3', input: 'hi', max_output_tokens: 1, store: false }),
  });
  if (r.status === 404) why = 'this server has no /v1/responses (404)';
});

// A test that reports skipped when the Responses API is not there.
const rtest = (name, fn) => test(name, async (t) => {
  if (why) { t.skip(why); return; }
  await fn(t);
});

const MODELS = ['qwen3', 'llama'];
const Weather = z.object({ city: z.string().max(8), unit: z.enum(['c', 'f']) });
const Person = z.object({
  name: z.string().max(6),
  age: z.number().int().min(0).max(120),
  likes: z.array(z.enum(['tea', 'jam'])).max(2),
});
const ASK = 'What is the weather in Paris?';
// The final answer of the tool-loop agents: a JSON schema, so that the turn
// after the tool ran ends (free text from random weights would run to
// max_output_tokens, an "incomplete" response, which the Agents SDK treats
// as an error). Greedy random weights may also call again on every turn
// (qwen3 does): after 4 turns the run ends through the SDK's maxTurns error
// handler, every call still executed and answered.
const LOOP = { maxTurns: 4, errorHandlers: { maxTurns: () => ({ finalOutput: { sky: 'rain' } }) } };
const Sky = z.object({ sky: z.enum(['clear', 'rain']) });

const client = () => new OpenAI({ baseURL: `${URL}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 300_000 });

/* ---- @openai/agents, default model provider (Responses API) ---- */

setTracingDisabled(true);

function weatherAgent(model, seen, useDefaultProvider) {
  const getWeather = tool({
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: Weather,
    execute: async (args) => {
      seen.push(Weather.parse(args));
      return JSON.stringify({ temp: 21, sky: 'clear' });
    },
  });
  return new Agent({
    name: 'weather',
    instructions: 'Answer weather questions with the get_weather tool.',
    // a model name goes through the SDK's default provider (Responses);
    // the explicit OpenAIResponsesModel is the same class, on our client
    model: useDefaultProvider ? model : new OpenAIResponsesModel(client(), model),
    tools: [getWeather],
    outputType: Sky,
    // the SDK resets toolChoice to auto once a tool ran: the next turn is
    // a call or the JSON answer
    modelSettings: { toolChoice: 'required', parallelToolCalls: false, maxTokens: 500, temperature: 0 },
  });
}

function checkLoop(result, seen) {
  const types = result.newItems.map((i) => i.type);
  const calls = result.newItems.filter((i) => i.type === 'tool_call_item');
  const outs = result.newItems.filter((i) => i.type === 'tool_call_output_item');
  assert.ok(calls.length >= 1, `no tool call: ${types}`);
  assert.equal(outs.length, calls.length, `${types}`);
  assert.equal(seen.length, calls.length);
  const raw = calls[0].rawItem;
  assert.equal(raw.type, 'function_call');
  assert.equal(raw.name, 'get_weather');
  assert.equal(typeof raw.callId, 'string');
  assert.ok(raw.callId.length > 0);
  Weather.parse(JSON.parse(raw.arguments));
  assert.equal(outs[0].rawItem.callId, raw.callId);
  // the tool output went back to the model: a second model response
  assert.ok(result.rawResponses.length >= 2, `${result.rawResponses.length} model responses`);
  for (const r of result.rawResponses) assert.match(r.responseId ?? '', /^resp_/);
  Sky.parse(result.finalOutput);
}

for (const model of MODELS) {
  rtest(`agents (responses) ${model}: a full tool loop through the default provider`, async () => {
    setDefaultOpenAIClient(client());
    const seen = [];
    const result = await run(weatherAgent(model, seen, true), ASK, LOOP);
    checkLoop(result, seen);
  });

  rtest(`agents (responses) ${model}: the same loop streamed`, async () => {
    const seen = [];
    const result = await run(weatherAgent(model, seen, false), ASK, { ...LOOP, stream: true });
    const kinds = new Set();
    for await (const ev of result) kinds.add(ev.type === 'raw_model_stream_event' ? ev.data.type : ev.type);
    await result.completed;
    assert.ok(kinds.has('run_item_stream_event'), [...kinds].join());
    assert.ok(kinds.has('response_done'), [...kinds].join());
    checkLoop(result, seen);
  });
}

rtest('agents (responses): outputType with a zod schema, plain and streamed', async () => {
  for (const model of MODELS) {
    const agent = new Agent({
      name: 'people', instructions: 'Describe a person.', model: new OpenAIResponsesModel(client(), model),
      outputType: Person, modelSettings: { maxTokens: 400, temperature: 0 },
    });
    const r = await run(agent, 'Describe a person.');
    Person.parse(r.finalOutput);
    const s = await run(agent, 'Describe someone else.', { stream: true });
    for await (const _ of s) { /* drain */ }
    await s.completed;
    Person.parse(s.finalOutput);
  }
});

/* ---- openai SDK: a call cut by max_output_tokens ---- */

// Arguments stream as they are written, so a call cut by max_output_tokens
// has been announced: the stream helper's final response and the
// non-streamed one must both hold it, with its partial arguments.
test('responses.stream: a call cut by max_output_tokens is in the final response', async (t) => {
  if (why) { t.skip(why); return; }
  const c = client();
  const params = {
    model: 'qwen3', input: ASK, temperature: 0, tool_choice: 'required', parallel_tool_calls: false,
    tools: [{ type: 'function', name: 'get_weather', strict: true, parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 400 } }, required: ['city'], additionalProperties: false } }],
  };
  const full = await c.responses.create({ ...params, max_output_tokens: 400 });
  const n = full.usage.output_tokens;
  const cut = await c.responses.create({ ...params, max_output_tokens: Math.max(1, n - 4) });
  assert.equal(cut.status, 'incomplete');
  const fc = cut.output.find((i) => i.type === 'function_call');
  assert.ok(fc, JSON.stringify(cut.output));
  assert.equal(fc.status, 'incomplete');
  const s = c.responses.stream({ ...params, max_output_tokens: Math.max(1, n - 4) });
  const added = new Set(), done = new Set();
  s.on('response.output_item.added', (e) => added.add(e.output_index));
  s.on('response.output_item.done', (e) => done.add(e.output_index));
  const fin = await s.finalResponse();
  assert.deepEqual([...done].sort(), [...added].sort());
  const sfc = fin.output.find((i) => i.type === 'function_call');
  assert.equal(sfc?.arguments, fc.arguments);
});

/* ---- Vercel AI SDK, default openai(model) provider (Responses API) ---- */

const openai = () => createOpenAI({ baseURL: `${URL}/v1`, apiKey: 'not-needed' });
const aiOpts = { maxOutputTokens: 400, temperature: 0, maxRetries: 0 };
// one call per step: random weights would otherwise go on calling until
// max_output_tokens (an incomplete response, whose calls the SDK does not run)
const oneCall = { providerOptions: { openai: { parallelToolCalls: false } } };

rtest('AI SDK openai() generateText: text, then a forced tool call and the answer step', async () => {
  for (const model of MODELS) {
    const m = openai()(model);
    assert.equal(m.provider, 'openai.responses');
    const r = await generateText({ model: m, prompt: 'Once upon a time', ...aiOpts, maxOutputTokens: 16 });
    assert.equal(typeof r.text, 'string');
    assert.ok(r.text.length > 0);
    assert.ok(['stop', 'length'].includes(r.finishReason), r.finishReason);
    assert.ok(r.usage.inputTokens > 0 && r.usage.outputTokens > 0 && r.usage.outputTokens <= 16);
    assert.match(r.response.id, /^resp_/);

    let called = 0;
    const t = await generateText({
      model: m, prompt: ASK, toolChoice: 'required', ...aiOpts, ...oneCall,
      tools: { get_weather: aiTool({ description: 'weather', inputSchema: Weather, execute: async (a) => { called++; Weather.parse(a); return { temp: 3 }; } }) },
    });
    assert.ok(t.toolCalls.length >= 1);
    for (const c of t.toolCalls) { assert.equal(c.toolName, 'get_weather'); Weather.parse(c.input); }
    assert.equal(called, t.toolCalls.length);
    assert.equal(t.toolResults.length, t.toolCalls.length);

    // two steps: the call, then the model sees the result (the second
    // request carries function_call and function_call_output items)
    const two = await generateText({
      model: m, prompt: ASK, ...aiOpts, ...oneCall, stopWhen: stepCountIs(2),
      prepareStep: ({ stepNumber }) => (stepNumber === 0 ? { toolChoice: 'required' } : { toolChoice: 'none' }),
      tools: { get_weather: aiTool({ description: 'weather', inputSchema: Weather, execute: async () => ({ temp: 3 }) }) },
    });
    assert.equal(two.steps.length, 2);
    assert.ok(two.steps[0].toolCalls.length >= 1);
    assert.equal(two.steps[1].toolCalls.length, 0);
    assert.equal(typeof two.text, 'string');
  }
});

rtest('AI SDK openai() streamText: text deltas and tool-call parts match the final result', async () => {
  for (const model of MODELS) {
    const s = streamText({ model: openai()(model), prompt: 'Once upon a time', ...aiOpts, maxOutputTokens: 16 });
    let text = '';
    for await (const d of s.textStream) text += d;
    assert.equal(text, await s.text);
    assert.ok(text.length > 0);
    assert.ok(['stop', 'length'].includes(await s.finishReason));

    const st = streamText({
      model: openai()(model), prompt: ASK, toolChoice: 'required', ...aiOpts, ...oneCall,
      tools: { get_weather: aiTool({ description: 'weather', inputSchema: Weather }) },
    });
    const parts = [];
    let argText = '', argDeltas = 0;
    for await (const p of st.fullStream) {
      parts.push(p.type);
      if (p.type === 'error') throw p.error;
      if (p.type === 'tool-input-delta') { argText += p.delta; argDeltas++; }
    }
    // response.function_call_arguments.delta events as the arguments grow
    assert.ok(argDeltas >= 3, `${argDeltas} argument deltas`);
    const calls = await st.toolCalls;
    assert.ok(calls.length >= 1, parts.join());
    Weather.parse(calls[0].input);
    assert.ok(parts.includes('tool-input-start'), parts.join());
    assert.ok(parts.includes('tool-call'), parts.join());
    if (calls.length === 1) assert.deepEqual(JSON.parse(argText), calls[0].input);
  }
});

rtest('AI SDK openai() generateObject (text.format json_schema)', async () => {
  for (const model of MODELS) {
    const { object, finishReason } = await generateObject({ model: openai()(model), schema: Person, prompt: 'Describe a person.', ...aiOpts });
    Person.parse(object);
    assert.equal(finishReason, 'stop');
  }
});

/* ---- LangChain ChatOpenAI with useResponsesApi ---- */

const lc = (model, extra = {}) => new ChatOpenAI({
  model, apiKey: 'not-needed', useResponsesApi: true, maxTokens: 400, temperature: 0, maxRetries: 0,
  configuration: { baseURL: `${URL}/v1` }, ...extra,
});

rtest('LangChain useResponsesApi: invoke and stream', async () => {
  for (const model of MODELS) {
    const msg = await lc(model, { maxTokens: 16 }).invoke('Once upon a time');
    assert.equal(typeof msg.text, 'string');
    assert.ok(msg.text.length > 0);
    assert.match(msg.id ?? msg.response_metadata?.id ?? '', /^(resp_|msg_)/);
    assert.ok(msg.usage_metadata.input_tokens > 0);
    let text = '';
    for await (const chunk of await lc(model, { maxTokens: 16 }).stream('Once upon a time')) text += chunk.text;
    assert.equal(text, msg.text, 'greedy: the stream says what invoke said');
  }
});

// LangChain 1.x on the Responses API drops a string tool_choice
// ("required", "any", a tool name: @langchain/openai chat_models/responses.js
// only forwards objects), so the call is forced with the object form.
rtest('LangChain useResponsesApi: bindTools with a named tool_choice, then the tool result', async () => {
  for (const model of MODELS) {
    const m = lc(model).bindTools([{ name: 'get_weather', description: 'weather', schema: Weather }],
      { tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false });
    const msg = await m.invoke(ASK);
    assert.equal(msg.tool_calls.length, 1);
    const c = msg.tool_calls[0];
    assert.equal(c.name, 'get_weather');
    Weather.parse(c.args);
    assert.ok(c.id);
    // the loop's second turn: the AIMessage with the call and a ToolMessage
    const { HumanMessage, ToolMessage } = await import('@langchain/core/messages');
    const answer = await lc(model, { maxTokens: 16 }).invoke([
      new HumanMessage(ASK), msg, new ToolMessage({ tool_call_id: c.id, content: JSON.stringify({ temp: 21 }) }),
    ]);
    assert.equal(typeof answer.text, 'string');
  }
});

rtest('LangChain useResponsesApi: withStructuredOutput (jsonSchema and functionCalling)', async () => {
  for (const model of MODELS) {
    for (const method of ['jsonSchema', 'functionCalling']) {
      const out = await lc(model).withStructuredOutput(Person, { method, name: 'person' }).invoke('Describe a person.');
      assert.ok(out, `${method} returned ${out}`);
      Person.parse(out);
    }
  }
});
