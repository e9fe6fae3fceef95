// Shared helpers of the openai-SDK integration tests. The server is started
// by ../test_server_openai.sh, which exports NUAGE_URL (http://host:port)
// and NUAGE_SHARED (the reference data folder).
import OpenAI from 'openai';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';

export const BASE = process.env.NUAGE_URL;
if (!BASE) throw new Error('NUAGE_URL is not set (run through tests/integration/test_server_openai.sh)');
export const SHARED = process.env.NUAGE_SHARED;
// Comparisons with llama.cpp's reference ids need ../shared: { skip: REF }.
export const REF = SHARED && existsSync(path.join(SHARED, 'vectors', 'logits')) ? false : 'no reference data (../shared)';
export const MODEL = process.env.NUAGE_MODEL_ID || 'stories260K';

export const client = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 300_000 });

// The server's own token ids of text (BOS included), the same as llama.cpp's
// for stories260K (checked by the tokenize test when ../shared is there).
export async function tokenIds(text) {
  const r = await postJson('/tokenize', { content: text, add_special: true });
  return r.json.tokens;
}

// Reference token ids from ../shared/vectors/logits.
export function refIds(name) {
  return readFileSync(path.join(SHARED, 'vectors', 'logits', name), 'utf8').trim().split(/\s+/).map(Number);
}

export async function postJson(route, body, headers = {}) {
  const r = await fetch(`${BASE}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, json, text };
}

export async function metrics() {
  const r = await fetch(`${BASE}/metrics`);
  const text = await r.text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out[line.slice(0, sp)] = Number(line.slice(sp + 1));
  }
  return out;
}

export async function health() {
  const r = await fetch(`${BASE}/health`);
  return { status: r.status, json: await r.json() };
}

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// Collect a streamed completion / chat: text per choice index, chunks, usage.
export async function collect(stream, chat) {
  const text = {}, finish = {}, reasoning = {};
  const chunks = [];
  let usage = null;
  for await (const ch of stream) {
    chunks.push(ch);
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      const t = chat ? (c.delta?.content ?? '') : (c.text ?? '');
      text[c.index] = (text[c.index] ?? '') + t;
      if (chat && c.delta?.reasoning_content) reasoning[c.index] = (reasoning[c.index] ?? '') + c.delta.reasoning_content;
      if (c.finish_reason) {
        if (finish[c.index]) throw new Error(`choice ${c.index} got two finish_reason chunks`);
        finish[c.index] = c.finish_reason;
      } else if (finish[c.index]) {
        throw new Error(`choice ${c.index} got a chunk after its finish_reason`);
      }
    }
  }
  return { text, finish, reasoning, chunks, usage };
}
