// Shared by the structured-output and tool tests (run by
// ../../test_server_tools.sh, which serves "qwen3", "llama" and "plain").
import OpenAI from 'openai';
import assert from 'node:assert/strict';

export const BASE = process.env.NUAGE_URL;
if (!BASE) throw new Error('NUAGE_URL is not set (run through tests/integration/test_server_tools.sh)');

export const client = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 300_000 });

// Bounded everywhere: random weights would otherwise write strings and
// numbers until max_tokens.
export const personSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 6 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { type: 'string', enum: ['a', 'b', 'c'] }, maxItems: 3 },
    pet: { anyOf: [{ type: 'null' }, { type: 'string', enum: ['cat', 'dog'] }] },
  },
  required: ['name', 'age', 'tags', 'pet'],
  additionalProperties: false,
};

export function checkPerson(o) {
  assert.equal(typeof o, 'object');
  assert.deepEqual(Object.keys(o).sort(), ['age', 'name', 'pet', 'tags']);
  assert.equal(typeof o.name, 'string');
  assert.ok([...o.name].length <= 6, `name too long: ${o.name}`);
  assert.ok(Number.isInteger(o.age) && o.age >= 0 && o.age <= 120, `age ${o.age}`);
  assert.ok(Array.isArray(o.tags) && o.tags.length <= 3);
  for (const t of o.tags) assert.ok(['a', 'b', 'c'].includes(t));
  assert.ok(o.pet === null || o.pet === 'cat' || o.pet === 'dog');
}

export const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', maxLength: 8 },
        unit: { type: 'string', enum: ['c', 'f'] },
      },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};

export const timeTool = {
  type: 'function',
  function: {
    name: 'get_time',
    description: 'Current time in a time zone',
    parameters: {
      type: 'object',
      properties: { zone: { type: 'string', enum: ['UTC', 'CET'] } },
      required: ['zone'],
      additionalProperties: false,
    },
  },
};

export function checkWeatherArgs(s) {
  const a = JSON.parse(s);
  assert.deepEqual(Object.keys(a).sort(), ['city', 'unit']);
  assert.equal(typeof a.city, 'string');
  assert.ok([...a.city].length <= 8);
  assert.ok(['c', 'f'].includes(a.unit));
  return a;
}

export function checkCall(call, name) {
  assert.match(call.id, /^call_[0-9a-f]{24}$/);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, name);
  assert.equal(typeof call.function.arguments, 'string');
  const a = JSON.parse(call.function.arguments);
  if (name === 'get_weather') checkWeatherArgs(call.function.arguments);
  if (name === 'get_time') assert.ok(['UTC', 'CET'].includes(a.zone));
  return a;
}

export const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];
