// LlamaIndex (llamaindex + @llamaindex/openai, chat completions), unchanged:
// the workflow agent (agent(): a streamed tool loop run to its answer),
// the agent step (llm.exec: the model calls a tool, LlamaIndex runs it and
// returns the assistant and tool messages), streamed and not, the second
// turn that sends those messages back, and structured output both ways
// LlamaIndex offers it (response_format from a zod schema, and exec's
// format_output tool). Random weights: calls are forced with tool_choice
// "required"; the tests check structure, never content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { tool } from 'llamaindex';
import { OpenAI } from '@llamaindex/openai';
import { agent } from '@llamaindex/workflow';
import { BASE } from './common.mjs';

const Weather = z.object({ city: z.string().max(8), unit: z.enum(['c', 'f']) });
const Person = z.object({
  name: z.string().max(6),
  age: z.number().int().min(0).max(120),
  likes: z.array(z.enum(['tea', 'jam'])).max(2),
});

const llm = (model, extra = {}) => new OpenAI({
  model, apiKey: 'not-needed', baseURL: `${BASE}/v1`, maxRetries: 0, timeout: 300_000, temperature: 0, maxTokens: 500,
  ...extra,
});

function weatherTool(seen) {
  return tool({
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: Weather,
    execute: (args) => {
      seen.push(Weather.parse(args));
      return { temp: 21, sky: 'clear' };
    },
  });
}

const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];

function checkStep(r, seen) {
  assert.equal(r.toolCalls.length, 1);
  const call = r.toolCalls[0];
  assert.equal(call.name, 'get_weather');
  assert.match(call.id, /^call_/);
  Weather.parse(typeof call.input === 'string' ? JSON.parse(call.input) : call.input);
  assert.equal(seen.length, 1);
  const msgs = typeof r.newMessages === 'function' ? r.newMessages() : r.newMessages;
  assert.equal(msgs.length, 2);
  assert.equal(msgs[0].role, 'assistant');
  assert.equal(msgs[0].options.toolCall[0].id, call.id);
  assert.equal(msgs[1].options.toolResult.id, call.id);
  assert.equal(msgs[1].options.toolResult.isError, false, JSON.stringify(msgs[1].options.toolResult));
  return msgs;
}

for (const model of ['qwen3', 'llama']) {
  test(`llamaindex ${model}: agent step with a tool, then the answer turn`, async () => {
    const forced = llm(model, { additionalChatOptions: { tool_choice: 'required', parallel_tool_calls: false } });
    const seen = [];
    const r = await forced.exec({ messages: [...ask], tools: [weatherTool(seen)] });
    const msgs = checkStep(r, seen);
    // turn 2: the assistant's tool call and the tool result go back
    const answer = await llm(model, { maxTokens: 24 }).chat({ messages: [...ask, ...msgs], tools: [weatherTool([])] });
    assert.equal(answer.message.role, 'assistant');
    assert.equal(typeof answer.message.content, 'string');
    assert.ok(['stop', 'length', 'tool_calls'].includes(answer.raw.choices[0].finish_reason));
  });

  test(`llamaindex ${model}: the agent step streamed`, async () => {
    const forced = llm(model, { additionalChatOptions: { tool_choice: 'required', parallel_tool_calls: false } });
    const seen = [];
    const r = await forced.exec({ messages: [...ask], tools: [weatherTool(seen)], stream: true });
    for await (const _ of r.stream ?? []) { /* drain */ }
    checkStep(r, seen);
  });
}

test('llamaindex: structured output (response_format from zod, and exec with format_output)', async () => {
  for (const model of ['qwen3', 'llama']) {
    const r = await llm(model).chat({ messages: [{ role: 'user', content: 'Describe a person.' }], responseFormat: Person });
    assert.equal(r.raw.choices[0].finish_reason, 'stop');
    Person.parse(JSON.parse(r.message.content));
    // exec turns the schema into a format_output tool; "required" makes the model call it
    const forced = llm(model, { additionalChatOptions: { tool_choice: 'required', parallel_tool_calls: false } });
    const e = await forced.exec({ messages: [{ role: 'user', content: 'Describe a person.' }], responseFormat: Person });
    assert.equal(e.toolCalls[0].name, 'format_output');
    Person.parse(e.object);
  }
});

// The workflow agent streams every turn. Its first request is forced to
// call (tool_choice "required"), the next ones may not call ("none"), so
// random weights run one full loop: call, tool, answer.
for (const model of ['qwen3', 'llama']) {
  test(`llamaindex ${model}: workflow agent() runs a tool loop to its answer`, async () => {
    const sent = [];
    const fetchTurns = async (url, init) => {
      const body = JSON.parse(init.body);
      body.tool_choice = sent.length === 0 ? 'required' : 'none';
      body.parallel_tool_calls = false;
      sent.push(body);
      return fetch(url, { ...init, body: JSON.stringify(body) });
    };
    const seen = [];
    const a = agent({ llm: llm(model, { maxTokens: 400, additionalSessionOptions: { fetch: fetchTurns } }), tools: [weatherTool(seen)], timeout: 300 });
    const out = await a.run('What is the weather in Paris?');
    assert.equal(seen.length, 1);
    assert.equal(sent.length, 2);
    assert.ok(sent.every((b) => b.stream === true));
    // turn 2 carries the assistant's call and the tool's result
    const msgs = sent[1].messages;
    const call = msgs.find((m) => m.role === 'assistant' && m.tool_calls);
    assert.ok(call, JSON.stringify(msgs));
    assert.equal(call.tool_calls[0].function.name, 'get_weather');
    Weather.parse(JSON.parse(call.tool_calls[0].function.arguments));
    assert.ok(msgs.some((m) => m.role === 'tool' && m.tool_call_id === call.tool_calls[0].id));
    assert.equal(typeof out.data.result, 'string');
  });
}
