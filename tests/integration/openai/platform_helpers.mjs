// Helpers of the hosting-platform tests (platform*.test.mjs). Unlike the
// other tests of this folder, each platform test file starts its own
// `nuage serve` processes (with their own temporary database and
// configuration), drives them and kills them: ../test_platform.sh runs
// them with NUAGE_PLATFORM_TESTS=1 and NUAGE_BIN / NUAGE_SHARED set. Run
// by test_server_openai.sh (whose server they do not use), they skip.
import OpenAI from 'openai';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const ENABLED = process.env.NUAGE_PLATFORM_TESTS === '1';
export const SKIP = ENABLED ? false : 'platform tests run through tests/integration/test_platform.sh';
export const BIN = process.env.NUAGE_BIN;
export const SHARED = process.env.NUAGE_SHARED;
// The model: ../shared's stories260K when the reference data is there (the
// fastest), else the bundled models/nuage-fast.gguf, so that a bare clone
// runs every platform test. MODEL_DIR is passed as --models-dir wherever a
// test loads it through the admin API.
const SOURCE = process.env.NUAGE_SOURCE_DIR || path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const SHARED_MODEL = SHARED ? path.join(SHARED, 'models', 'stories260K.gguf') : '';
export const MODEL_FILE = SHARED_MODEL && existsSync(SHARED_MODEL) ? SHARED_MODEL : path.join(SOURCE, 'models', 'nuage-fast.gguf');
export const MODEL_DIR = path.dirname(MODEL_FILE);
// Generous timeouts: the sanitizer build is several times slower.
export const SLOW = Number(process.env.NUAGE_TEST_SLOW || '1');

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

export function tempDir() {
  return mkdtempSync(path.join(tmpdir(), 'nuage-platform-'));
}

// `nuage admin --db DB args...` -> stdout (throws on a non-zero exit).
export function admin(db, ...args) {
  return execFileSync(BIN, ['admin', '--db', db, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function createTenant(db, name, { tpm = 0, rpm = 0, weight = 1 } = {}) {
  admin(db, 'tenant', 'create', name, '--tpm', String(tpm), '--rpm', String(rpm), '--weight', String(weight));
}

export function createKey(db, { tenant = null, deployments = null, isAdmin = false } = {}) {
  const args = ['key', 'create'];
  if (tenant) args.push('--tenant', tenant);
  if (deployments) args.push('--deployments', deployments);
  if (isAdmin) args.push('--admin');
  return admin(db, ...args);
}

export function writeConfig(file, deployments, server = undefined) {
  writeFileSync(file, JSON.stringify(server ? { server, deployments } : { deployments }, null, 2));
}

// A running `nuage serve`: .url, .port, .log(), .stop(), .kill().
export class Server {
  constructor(args, { env = {} } = {}) {
    this.args = args;
    this.out = '';
    this.exited = null;
    this.proc = spawn(BIN, ['serve', '--port', '0', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NUAGE_DB: '', ...env },
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => { this.out += d; });
    this.exitPromise = new Promise((res) => this.proc.on('exit', (code, sig) => { this.exited = { code, sig }; res(this.exited); }));
  }

  log() { return this.out; }

  // Wait for the listening line and /health 200 (or the process to exit).
  async ready(timeoutMs = 60_000 * SLOW) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.exited) throw new Error(`server exited (${JSON.stringify(this.exited)}):\n${this.out}`);
      const m = this.out.match(/listening on http:\/\/([^\s]+):(\d+)/);
      if (m) {
        this.port = Number(m[2]);
        this.url = `http://127.0.0.1:${this.port}`;
        try {
          const r = await fetch(`${this.url}/health`);
          if (r.status === 200) return this;
        } catch { /* not yet */ }
      }
      await sleep(50);
    }
    throw new Error(`server not ready:\n${this.out}`);
  }

  client(apiKey = 'none') {
    return new OpenAI({ baseURL: `${this.url}/v1`, apiKey, maxRetries: 0, timeout: 300_000 * SLOW });
  }

  async fetch(route, { method = 'GET', key = null, body = undefined, headers = {} } = {}) {
    const h = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    const r = await fetch(`${this.url}${route}`, {
      method, headers: h, body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, json, text };
  }

  signal(sig) { if (!this.exited) this.proc.kill(sig); }

  async stop() {
    if (this.exited) return this.exited;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000 * SLOW);
    const r = await this.exitPromise;
    clearTimeout(t);
    return r;
  }

  async kill() {
    if (this.exited) return this.exited;
    this.proc.kill('SIGKILL');
    return this.exitPromise;
  }

  // Wait for a line matching re in the log.
  async waitLog(re, timeoutMs = 60_000 * SLOW) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (re.test(this.out)) return true;
      if (this.exited) break;
      await sleep(50);
    }
    throw new Error(`log never matched ${re}:\n${this.out}`);
  }
}

// Sanitizer reports in a server's log fail the test that ran it.
export function assertCleanLog(assert, srv) {
  assert.doesNotMatch(srv.log(), /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/, srv.log());
}

export function cleanup(dir) {
  if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}

// Collect a stream: text of choice 0, the chunks, usage, fingerprints.
export async function collectStream(stream) {
  let text = '';
  let usage = null;
  const fingerprints = new Set();
  const models = new Set();
  for await (const ch of stream) {
    if (ch.system_fingerprint) fingerprints.add(ch.system_fingerprint);
    if (ch.model) models.add(ch.model);
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) text += c.delta?.content ?? c.text ?? '';
  }
  return { text, usage, fingerprints: [...fingerprints], models: [...models] };
}
