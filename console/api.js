// api.js - the console's only door to the server: the public HTTP API,
// with the API key the user typed in.
//
// The key lives in sessionStorage (gone when the tab closes; never a
// cookie, so no request is ever authenticated by the browser on its own:
// no CSRF) and goes out as `Authorization: Bearer KEY`. Every call is
// same-origin (the CSP's connect-src 'self'). Errors come back as
// ApiError carrying the HTTP status and the server's OpenAI-style message.

const KEY = 'nuage.apiKey';

export function getKey() {
  try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
}

export function setKey(k) {
  try {
    if (k) sessionStorage.setItem(KEY, k);
    else sessionStorage.removeItem(KEY);
  } catch { /* storage disabled: the key lasts for this page only */ }
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// Headers for a call: the bearer key when there is one, JSON body type.
export function headers(extra = {}, json = false) {
  const h = { ...extra };
  const k = getKey();
  if (k) h.authorization = `Bearer ${k}`;
  if (json) h['content-type'] = 'application/json';
  return h;
}

// fetch() a path of this server; returns the Response (not checked).
export function raw(path, { method = 'GET', body, signal, accept } = {}) {
  const h = headers(accept ? { accept } : {}, body !== undefined);
  return fetch(path, {
    method, headers: h, signal, cache: 'no-store', credentials: 'omit',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

// Call path and parse the JSON answer: { json, headers, status }; throws
// ApiError for a non-2xx status.
export async function call(path, opts = {}) {
  const r = await raw(path, opts);
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!r.ok) {
    const msg = json?.error?.message || text || r.statusText;
    throw new ApiError(r.status, `${r.status}: ${msg}`, json);
  }
  return { json, headers: r.headers, status: r.status };
}

// The x-ratelimit-* headers of a response, as numbers (null when absent).
export function rateLimits(h) {
  const n = (k) => (h.get(k) === null ? null : Number(h.get(k)));
  return {
    limitRequests: n('x-ratelimit-limit-requests'),
    remainingRequests: n('x-ratelimit-remaining-requests'),
    resetRequests: h.get('x-ratelimit-reset-requests'),
    limitTokens: n('x-ratelimit-limit-tokens'),
    remainingTokens: n('x-ratelimit-remaining-tokens'),
    resetTokens: h.get('x-ratelimit-reset-tokens'),
  };
}

// Small DOM helper: el('div', {class: 'x', text: 'hi'}, child, ...).
// Attributes are set with setAttribute (never innerHTML); 'text' sets
// textContent; on* keys add listeners.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export const fmt = {
  int: (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US')),
  ms: (s) => (s === null || s === undefined ? '–' : `${Math.round(s * 1000).toLocaleString('en-US')} ms`),
  bytes: (b) => {
    if (b === null || b === undefined) return '–';
    const u = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    let x = Number(b);
    while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
    return `${x.toFixed(i ? 1 : 0)} ${u[i]}`;
  },
  date: (ms) => (ms ? new Date(ms).toISOString().slice(0, 16).replace('T', ' ') : '–'),
};

// Show a status line (role=status, polite) in container c.
export function notice(c, text, kind = 'info') {
  c.replaceChildren(text ? el('p', { class: `notice ${kind}`, text }) : '');
}
