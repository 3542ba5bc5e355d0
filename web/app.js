// The dashboard shell: hash routes to pages, theme, token dialog, and the
// keyboard shortcuts. Each page's mount(el, params) returns its cleanup.

import { setToken, token } from './api.js';
import * as runs from './pages/runs.js';
import * as run from './pages/run.js';
import * as editor from './pages/editor.js';
import * as plugins from './pages/plugins.js';
import * as workers from './pages/workers.js';
import * as schedules from './pages/schedules.js';
import * as workflows from './pages/workflows.js';

const routes = [
  [/^#?\/?(runs)?(?:\?.*)?$/, runs, 'runs'],
  [/^#\/runs\/([^/?]+)(?:\?.*)?$/, run, 'runs'],
  [/^#\/editor$/, editor, 'editor'],
  [/^#\/plugins$/, plugins, 'plugins'],
  [/^#\/workers$/, workers, 'workers'],
  [/^#\/schedules$/, schedules, 'schedules'],
  [/^#\/workflows(?:\?.*)?$/, workflows, 'workflows'],
];

let cleanup = null;

function route() {
  const page = document.getElementById('page');
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  while (page.firstChild) page.firstChild.remove();
  document.getElementById('live').classList.remove('on');
  const hash = location.hash || '#/runs';
  for (const [pattern, module, nav] of routes) {
    const m = hash.match(pattern);
    if (!m) continue;
    for (const a of document.querySelectorAll('nav a')) {
      a.toggleAttribute('aria-current', a.dataset.page === nav);
    }
    document.title = `weft · ${nav}`;
    cleanup = module.mount(page, m.slice(1).map((p) => p && decodeURIComponent(p))) || null;
    return;
  }
  page.textContent = 'No such page.';
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem('weft.theme', theme);
}

function startTheme() {
  const saved = localStorage.getItem('weft.theme');
  const dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  applyTheme(saved || (dark ? 'dark' : 'light'));
  document.getElementById('theme-button').addEventListener('click', toggleTheme);
}

function toggleTheme() {
  applyTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark');
}

function startToken() {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  const open = () => {
    if (dialog.open) return;
    input.value = token();
    dialog.showModal();
    input.focus();
  };
  document.getElementById('token-button').addEventListener('click', open);
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'save') {
      setToken(input.value);
      route();
    }
  });
  window.addEventListener('weft:unauthorized', open);
}

const keys = { r: '#/runs', f: '#/workflows', e: '#/editor', p: '#/plugins', w: '#/workers', s: '#/schedules' };

function startKeys() {
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t.closest && t.closest('input, textarea, select, dialog, [contenteditable]')) return;
    if (keys[e.key]) { location.hash = keys[e.key]; e.preventDefault(); }
    else if (e.key === 't') toggleTheme();
    else if (e.key === '/') {
      const filter = document.querySelector('[data-filter]');
      if (filter) { filter.focus(); e.preventDefault(); }
    }
  });
}

window.addEventListener('weft:live', (e) => {
  document.getElementById('live').classList.toggle('on', e.detail);
});

startTheme();
startToken();
startKeys();
window.addEventListener('hashchange', route);
route();
