// The editor's text box: a textarea over a highlighted copy of its text
// (TOML: tables, keys, strings, numbers, booleans, comments, and `{{ }}`
// templates), with the lines that have problems marked, and completion of
// keys from the workflow format's JSON Schema (GET /api/schema): typing a
// key's first letters at a line's start offers the keys its table may hold,
// with what each does; Tab or Enter takes one, Escape closes the list.

import { h, clear } from './dom.js';

/** The key lists of each kind of table, from the schema. */
function keysOf(schema) {
  const props = (node) => (node && node.properties) || {};
  const entries = (node) => Object.entries(props(node)).map(([key, p]) => ({ key, doc: p.description || '' }));
  const root = schema || {};
  const step = root.properties && root.properties.steps && root.properties.steps.additionalProperties;
  return {
    top: Object.keys(props(root)).map((key) => ({ key: `[${key}]`, doc: (props(root)[key] || {}).description || '' })),
    workflow: entries(props(root).workflow),
    defaults: entries(props(root).defaults),
    step: entries(step),
  };
}

/** Which table the line `at` is in: 'workflow', 'defaults', 'step', 'params', 'other' or 'top'. */
function tableAt(text, at) {
  const before = text.slice(0, at).split('\n');
  for (let i = before.length - 2; i >= 0; i--) {
    const m = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?/.exec(before[i]);
    if (!m) continue;
    const name = m[1];
    if (name === 'workflow') return 'workflow';
    if (name === 'defaults') return 'defaults';
    if (name === 'params') return 'params';
    if (/^steps\.[^.]+$/.test(name)) return 'step';
    return 'other';
  }
  return 'top';
}

// One line's tokens: [class, text]. `state` carries a multi-line string's quote.
const TOKEN = /(#.*$)|("""|''')|("(?:[^"\\]|\\.)*"?|'[^']*'?)|(\b(?:true|false)\b)|([+-]?\b\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?\b)|(\{\{.*?\}\})/g;

function tokens(line, state) {
  const out = [];
  let at = 0;
  const push = (cls, text) => { if (text) out.push([cls, text]); };
  // Inside a multi-line string: up to its closing quotes.
  if (state.quote) {
    const end = line.indexOf(state.quote);
    if (end < 0) { strings(out, line); return out; }
    strings(out, line.slice(0, end + 3));
    at = end + 3;
    state.quote = null;
  }
  const rest = line.slice(at);
  const table = /^(\s*)(\[\[?[^\]]*\]\]?)(.*)$/.exec(rest);
  if (table && at === 0) {
    push(null, table[1]); push('tok-table', table[2]); push('tok-comment', table[3]);
    return out;
  }
  const key = at === 0 ? /^(\s*)([\w.\-"']+)(\s*=)/.exec(rest) : null;
  let i = 0;
  if (key) { push(null, key[1]); push('tok-key', key[2]); push(null, key[3]); i = key[0].length; }
  TOKEN.lastIndex = i;
  let m;
  while ((m = TOKEN.exec(rest))) {
    push(null, rest.slice(i, m.index));
    if (m[1]) push('tok-comment', m[1]);
    else if (m[2]) {
      // A multi-line string opens here; it may close on this line.
      const close = rest.indexOf(m[2], m.index + 3);
      if (close < 0) { strings(out, rest.slice(m.index)); state.quote = m[2]; return out; }
      strings(out, rest.slice(m.index, close + 3));
      TOKEN.lastIndex = close + 3;
      i = close + 3;
      continue;
    } else if (m[3]) strings(out, m[3]);
    else if (m[4]) push('tok-bool', m[4]);
    else if (m[5]) push('tok-num', m[5]);
    else if (m[6]) push('tok-tmpl', m[6]);
    i = TOKEN.lastIndex;
    if (m[0] === '') TOKEN.lastIndex++;
  }
  push(null, rest.slice(i));
  return out;
}

/** A string's text, its `{{ }}` templates apart. */
function strings(out, text) {
  let at = 0;
  for (const m of text.matchAll(/\{\{.*?\}\}/g)) {
    if (m.index > at) out.push(['tok-str', text.slice(at, m.index)]);
    out.push(['tok-tmpl', m[0]]);
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(['tok-str', text.slice(at)]);
}

/**
 * Wraps `textarea` in a highlighted editor; returns {element, refresh(),
 * mark(lines)}. `schema` (a promise) gives completion once it arrives.
 */
export function codeEditor(textarea, schema) {
  const layer = h('pre', { class: 'code-layer', 'aria-hidden': 'true' });
  const list = h('ul', { class: 'completions', role: 'listbox', 'aria-label': 'keys', hidden: true });
  const element = h('div', { class: 'code-editor' }, layer, textarea, list);
  textarea.classList.add('code-input');
  let keys = null;
  let problems = new Set();
  let offered = [];
  let picked = 0;
  let word = null;
  schema.then((s) => { keys = keysOf(s); }).catch(() => {});

  function refresh() {
    const state = { quote: null };
    clear(layer);
    textarea.value.split('\n').forEach((line, n) => {
      const row = h('span', { class: problems.has(n + 1) ? 'code-line problem' : 'code-line' });
      for (const [cls, text] of tokens(line, state)) row.append(cls ? h('span', { class: cls }, text) : text);
      layer.append(row, '\n');
    });
    sync();
  }

  function sync() {
    layer.scrollTop = textarea.scrollTop;
    layer.scrollLeft = textarea.scrollLeft;
  }

  /** The word being typed at a line's start, and where it starts. */
  function typing() {
    const at = textarea.selectionStart;
    if (at !== textarea.selectionEnd) return null;
    const text = textarea.value;
    const lineStart = text.lastIndexOf('\n', at - 1) + 1;
    const m = /^(\s*)([\w\-[]*)$/.exec(text.slice(lineStart, at));
    if (!m || !m[2]) return null;
    return { from: lineStart + m[1].length, to: at, text: m[2] };
  }

  function offer() {
    word = typing();
    if (!keys || !word) { close(); return; }
    const table = tableAt(textarea.value, word.from);
    const pool = table === 'top' || word.text.startsWith('[') ? keys.top : keys[table] || [];
    const needle = word.text.toLowerCase();
    offered = pool.filter((k) => k.key.toLowerCase().startsWith(needle) && k.key.toLowerCase() !== needle).slice(0, 12);
    if (!offered.length) { close(); return; }
    picked = 0;
    show();
  }

  /** Under the word being completed: its line and column, in the box's font. */
  function place() {
    const style = getComputedStyle(textarea);
    const before = textarea.value.slice(0, word.from).split('\n');
    const column = before[before.length - 1].length;
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `${style.fontSize} ${style.fontFamily}`;
    const cw = ctx.measureText('0000000000').width / 10;
    const lh = parseFloat(style.lineHeight) || 19.5;
    const pad = parseFloat(style.paddingTop) || 8;
    list.style.top = `${pad + before.length * lh - textarea.scrollTop + 2}px`;
    list.style.left = `${Math.max(0, pad + column * cw - textarea.scrollLeft)}px`;
  }

  function show() {
    place();
    clear(list).append(...offered.map((k, i) => h('li', {
      role: 'option', 'aria-selected': String(i === picked), 'data-key': k.key,
      onmousedown: (e) => { e.preventDefault(); picked = i; take(); },
    }, h('code', {}, k.key), k.doc ? h('span', { class: 'doc' }, k.doc.length > 90 ? `${k.doc.slice(0, 89)}…` : k.doc) : '')));
    list.hidden = false;
  }

  function close() {
    list.hidden = true;
    offered = [];
  }

  function take() {
    const k = offered[picked];
    if (!k || !word) return;
    const insert = k.key.startsWith('[') ? k.key : `${k.key} = `;
    textarea.setRangeText(insert, word.from, word.to, 'end');
    close();
    textarea.dispatchEvent(new Event('input'));
  }

  textarea.addEventListener('input', () => { refresh(); offer(); });
  textarea.addEventListener('scroll', sync);
  textarea.addEventListener('blur', close);
  textarea.addEventListener('keydown', (e) => {
    if (list.hidden) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      picked = (picked + (e.key === 'ArrowDown' ? 1 : offered.length - 1)) % offered.length;
      show();
      e.preventDefault();
    } else if (e.key === 'Tab' || e.key === 'Enter') { take(); e.preventDefault(); }
    else if (e.key === 'Escape') { close(); e.preventDefault(); }
  });
  refresh();
  return {
    element,
    refresh,
    /** Marks the lines (1-based) that have problems. */
    mark(lines) { problems = new Set(lines); refresh(); },
  };
}
