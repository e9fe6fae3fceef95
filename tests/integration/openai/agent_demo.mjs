// agent_demo.mjs - nuage's own model as an agent: the official openai SDK's
// runTools loop against `nuage serve`, with three local tools (calculator,
// convert_units, date_add). The model decides whether to call a tool, the
// SDK runs it here and sends the result back, the model answers from it.
//
//   NUAGE_URL=http://127.0.0.1:8080 node agent_demo.mjs ["question"]
//       prints the transcript of one question (default: the README's)
//   NUAGE_URL=... node agent_demo.mjs --check FILE.jsonl
//       runs every held-out question of FILE (lines of `nuage synth-data
//       --split heldout`, tool tasks) and exits 1 unless each final answer
//       is the expected one
//
// The tools compute what nuage's reference tools (src/train/synth_tools.c)
// compute, with the same number format (integers, or up to 6 decimals).
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';

const BASE = process.env.NUAGE_URL;
if (!BASE) throw new Error('NUAGE_URL is not set');
const client = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: process.env.NUAGE_API_KEY || 'not-needed', maxRetries: 0 });

function fmt(v) {
  const r = Math.round(v);
  if (Math.abs(v - r) < 1e-9 * Math.max(1, Math.abs(v))) return String(r);
  return v.toFixed(6).replace(/0+$/, '').replace(/\.$/, '');
}

function calculator({ expression }) {
  const e = String(expression).replace(/×/g, '*').replace(/÷/g, '/');
  if (!/^[0-9+\-*/(). ]+$/.test(e)) return 'error: cannot parse ' + expression;
  const v = Function(`"use strict"; return (${e});`)(); // only digits and operators reach here
  if (!Number.isFinite(v)) return 'error: division by zero';
  return fmt(v);
}

const UNITS = {
  millimeter: [0, 0.001], centimeter: [0, 0.01], meter: [0, 1], kilometer: [0, 1000], inch: [0, 0.0254],
  foot: [0, 0.3048], yard: [0, 0.9144], mile: [0, 1609.344], gram: [1, 1], kilogram: [1, 1000],
  pound: [1, 453.59237], ounce: [1, 28.349523125], milliliter: [2, 0.001], liter: [2, 1],
  gallon: [2, 3.785411784], second: [3, 1], minute: [3, 60], hour: [3, 3600], day: [3, 86400], week: [3, 604800],
};
const PLURAL = { inches: 'inch', feet: 'foot' };
const unit = (s) => UNITS[PLURAL[s] || (UNITS[s] ? s : String(s).replace(/s$/, ''))];

function convert_units({ value, from, to }) {
  const a = unit(from), b = unit(to);
  if (!a || !b) return `error: unknown unit ${a ? to : from}`;
  if (a[0] !== b[0]) return 'error: cannot convert between these units';
  return fmt((value * a[1]) / b[1]);
}

function date_add({ date, days }) {
  const t = Date.parse(`${date}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || Number.isNaN(t)) return 'error: date must be YYYY-MM-DD';
  return new Date(t + days * 86400000).toISOString().slice(0, 10);
}

const str = { type: 'string' };
const TOOLS = [
  { type: 'function', function: { name: 'calculator', description: 'Evaluate a math expression.', parse: JSON.parse,
    function: calculator, parameters: { type: 'object', properties: { expression: str }, required: ['expression'] } } },
  { type: 'function', function: { name: 'convert_units', description: 'Convert a value between units.', parse: JSON.parse,
    function: convert_units, parameters: { type: 'object', properties: { value: { type: 'number' }, from: str, to: str },
      required: ['value', 'from', 'to'] } } },
  { type: 'function', function: { name: 'date_add', description: 'Add days to a date.', parse: JSON.parse,
    function: date_add, parameters: { type: 'object', properties: { date: str, days: { type: 'integer' } },
      required: ['date', 'days'] } } },
];

async function modelId() {
  if (process.env.NUAGE_MODEL_ID) return process.env.NUAGE_MODEL_ID;
  const list = await client.models.list();
  return list.data[0].id;
}

// One question through the SDK's tool loop; returns { answer, transcript }.
async function ask(model, question) {
  const lines = [`user: ${question}`];
  const runner = client.chat.completions.runTools({
    model, temperature: 0, parallel_tool_calls: false, messages: [{ role: 'user', content: question }], tools: TOOLS,
  });
  runner.on('message', (m) => {
    if (m.role === 'assistant' && m.tool_calls?.length)
      for (const c of m.tool_calls) lines.push(`assistant -> ${c.function.name}(${c.function.arguments})`);
    else if (m.role === 'tool') lines.push(`tool: ${m.content}`);
    else if (m.role === 'assistant') lines.push(`assistant: ${m.content}`);
  });
  let answer = '';
  try {
    answer = await runner.finalContent();
  } catch (e) { // e.g. the reply ran into the end of the context (finish_reason "length")
    lines.push(`(no answer: ${e.message})`);
  }
  return { answer: (answer || '').trim(), transcript: lines.join('\n') };
}

const model = await modelId();
if (process.argv[2] === '--check') {
  const items = readFileSync(process.argv[3], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  let bad = 0;
  for (const it of items) {
    const q = it.messages[0].content;
    const { answer, transcript } = await ask(model, q);
    const ok = answer.split(/\s+/).pop().replace(/[.,!?;:]+$/, '') === it.answer;
    if (!ok) bad++;
    console.log(`${ok ? 'ok   ' : 'WRONG'} ${q} -> ${answer} (expected ${it.answer})`);
    if (!ok) console.log(transcript.replace(/^/gm, '    '));
  }
  console.log(`${items.length - bad}/${items.length} right`);
  process.exit(bad ? 1 : 0);
} else {
  const q = process.argv[2] || 'What is 48213 × 9377, in thousands?';
  const { transcript } = await ask(model, q);
  console.log(transcript);
}
