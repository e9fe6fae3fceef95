// The agent frameworks people build on, unchanged: LangChain's ChatOpenAI
// (withStructuredOutput in both modes, bindTools) and the Vercel AI SDK
// (generateObject, generateText with toolChoice "required").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { ChatOpenAI } from '@langchain/openai';
import { createOpenAI } from '@ai-sdk/openai';
import { generateObject, generateText, streamText, tool } from 'ai';
import { BASE } from './common.mjs';

const Person = z.object({
  name: z.string().max(6),
  age: z.number().int().min(0).max(120),
  likes: z.array(z.enum(['tea', 'jam'])).max(2),
});
const Weather = z.object({ city: z.string().max(8), unit: z.enum(['c', 'f']) });

const lc = (model) => new ChatOpenAI({ model, apiKey: 'not-needed', maxTokens: 600, temperature: 0, maxRetries: 0, configuration: { baseURL: `${BASE}/v1` } });

test('LangChain withStructuredOutput (jsonSchema and functionCalling)', async () => {
  for (const method of ['jsonSchema', 'functionCalling']) {
    const out = await lc('qwen3').withStructuredOutput(Person, { method, name: 'person' }).invoke('Describe a person.');
    assert.ok(out, `${method} returned ${out}`);
    Person.parse(out);
  }
});

test('LangChain bindTools with tool_choice required', async () => {
  const m = lc('llama').bindTools([{ name: 'get_weather', description: 'weather', schema: Weather }], { tool_choice: 'required' });
  const msg = await m.invoke('Weather in Rome?');
  assert.ok(msg.tool_calls.length >= 1);
  for (const c of msg.tool_calls) {
    assert.equal(c.name, 'get_weather');
    Weather.parse(c.args);
    assert.match(c.id, /^call_/);
  }
});

const openai = createOpenAI({ baseURL: `${BASE}/v1`, apiKey: 'not-needed' });

test('AI SDK generateObject', async () => {
  const { object } = await generateObject({ model: openai.chat('qwen3'), schema: Person, prompt: 'Describe a person.', maxOutputTokens: 600, temperature: 0, maxRetries: 0 });
  Person.parse(object);
});

test('AI SDK generateText with toolChoice required', async () => {
  let called = 0;
  const r = await generateText({
    model: openai.chat('llama'), prompt: 'Weather in Rome?', toolChoice: 'required', maxOutputTokens: 600, temperature: 0, maxRetries: 0,
    tools: { get_weather: tool({ description: 'weather', inputSchema: Weather, execute: async (a) => { called++; Weather.parse(a); return { temp: 3 }; } }) },
  });
  assert.ok(r.toolCalls.length >= 1);
  for (const c of r.toolCalls) Weather.parse(c.input);
  assert.equal(called, r.toolCalls.length);
});

// Tool-call arguments stream in fragments: the AI SDK's chat stream parser
// assembles them (tool-input-delta parts) into the same call.
test('AI SDK streamText (chat) with toolChoice required', async () => {
  for (const model of ['qwen3', 'llama']) {
    const s = streamText({
      model: openai.chat(model), prompt: 'Weather in Rome?', toolChoice: 'required', maxOutputTokens: 600, temperature: 0, maxRetries: 0,
      providerOptions: { openai: { parallelToolCalls: false } },
      tools: { get_weather: tool({ description: 'weather', inputSchema: Weather }) },
    });
    let deltas = 0, text = '';
    for await (const p of s.fullStream) {
      if (p.type === 'error') throw p.error;
      if (p.type === 'tool-input-delta') { deltas++; text += p.delta; }
    }
    const calls = await s.toolCalls;
    assert.equal(calls.length, 1);
    Weather.parse(calls[0].input);
    assert.deepEqual(JSON.parse(text), calls[0].input);
    assert.ok(deltas >= 3, `${deltas} argument deltas`);
  }
});

test('LangChain bindTools streamed: tool_call_chunks concatenate to the call', async () => {
  const m = lc('qwen3').bindTools([{ name: 'get_weather', description: 'weather', schema: Weather }], { tool_choice: 'required', parallel_tool_calls: false });
  let full = null, chunks = 0;
  for await (const ch of await m.stream('Weather in Rome?')) {
    if (ch.tool_call_chunks?.length) chunks++;
    full = full ? full.concat(ch) : ch;
  }
  assert.ok(chunks >= 3, `${chunks} chunks with tool_call_chunks`);
  assert.equal(full.tool_calls.length, 1);
  assert.equal(full.tool_calls[0].name, 'get_weather');
  Weather.parse(full.tool_calls[0].args);
  const once = await m.invoke('Weather in Rome?');
  assert.deepEqual(full.tool_calls[0].args, once.tool_calls[0].args, 'greedy: streamed and not agree');
});
