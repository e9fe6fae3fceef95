// The @openai/agents SDK on chat completions (OpenAIChatCompletionsModel),
// unchanged: a full tool loop (the model calls a zod function tool, the
// SDK runs it, sends the result back and the next turn answers), streamed
// and not, and a run whose outputType is a zod schema. Random weights: the
// first turn is forced to call (toolChoice "required"; the SDK resets it to
// auto after a tool ran), and the tests check structure, never content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { Agent, run, tool, setTracingDisabled, OpenAIChatCompletionsModel } from '@openai/agents';
import { client } from './common.mjs';

setTracingDisabled(true);

const Weather = z.object({ city: z.string().max(8), unit: z.enum(['c', 'f']) });
const Person = z.object({
  name: z.string().max(6),
  age: z.number().int().min(0).max(120),
  likes: z.array(z.enum(['tea', 'jam'])).max(2),
});

function weatherAgent(model, seen) {
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
    model: new OpenAIChatCompletionsModel(client, model),
    tools: [getWeather],
    modelSettings: { toolChoice: 'required', parallelToolCalls: false, maxTokens: 500, temperature: 0 },
  });
}

// The items of a finished run: one call, its output, then the final answer.
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
  assert.match(raw.callId, /^call_/);
  Weather.parse(JSON.parse(raw.arguments));
  assert.equal(outs[0].rawItem.callId, raw.callId);
  // the model saw the tool's output: at least two model calls
  assert.ok(result.rawResponses.length >= 2, `${result.rawResponses.length} model responses`);
  assert.equal(typeof result.finalOutput, 'string');
}

for (const model of ['qwen3', 'llama']) {
  test(`agents (chat completions) ${model}: a full tool loop`, async () => {
    const seen = [];
    const result = await run(weatherAgent(model, seen), 'What is the weather in Paris?', { maxTurns: 6 });
    checkLoop(result, seen);
  });

  test(`agents (chat completions) ${model}: the same loop streamed`, async () => {
    const seen = [];
    const result = await run(weatherAgent(model, seen), 'What is the weather in Paris?', { maxTurns: 6, stream: true });
    const events = [];
    for await (const ev of result) events.push(ev.type);
    await result.completed;
    assert.ok(events.includes('raw_model_stream_event'));
    assert.ok(events.includes('run_item_stream_event'));
    checkLoop(result, seen);
  });
}

test('agents (chat completions): outputType with a zod schema', async () => {
  for (const model of ['qwen3', 'llama']) {
    const agent = new Agent({
      name: 'people',
      instructions: 'Describe a person.',
      model: new OpenAIChatCompletionsModel(client, model),
      outputType: Person,
      modelSettings: { maxTokens: 400, temperature: 0 },
    });
    const result = await run(agent, 'Describe a person.');
    Person.parse(result.finalOutput);
    // streamed too
    const s = await run(agent, 'Describe someone else.', { stream: true });
    for await (const _ of s) { /* drain */ }
    await s.completed;
    Person.parse(s.finalOutput);
  }
});
