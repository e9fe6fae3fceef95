// app.js - the console's shell: the API key form, the page switcher
// (#playground, #usage, #operations in the URL fragment, so the back
// button and bookmarks work) and lazy page set-up.
//
// Each page module exports mount(section) (build its DOM once) and
// show() (refresh when it becomes visible) and optionally hide() (stop
// polling). Pages talk to the server only through api.js.
import { getKey, setKey } from './api.js';
import * as playground from './playground.js';
import * as usage from './usage.js';
import * as operations from './operations.js';

const pages = { playground, usage, operations };
const mounted = new Set();
let current = null;

function route() {
  const name = (location.hash || '#playground').slice(1);
  const page = pages[name] ? name : 'playground';
  if (current && current !== page) pages[current].hide?.();
  for (const n of Object.keys(pages)) {
    document.getElementById(`page-${n}`).hidden = n !== page;
    const a = document.querySelector(`nav a[data-page="${n}"]`);
    if (n === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const sec = document.getElementById(`page-${page}`);
  if (!mounted.has(page)) { pages[page].mount(sec); mounted.add(page); }
  current = page;
  pages[page].show();
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · nuage console`;
}

function start() {
  const input = document.getElementById('apikey');
  input.value = getKey();
  document.getElementById('keyform').addEventListener('submit', (e) => {
    e.preventDefault();
    setKey(input.value.trim());
    document.getElementById('live').textContent = input.value.trim() ? 'API key set for this tab.' : 'API key cleared.';
    if (current) pages[current].show();
  });
  window.addEventListener('hashchange', route);
  route();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
