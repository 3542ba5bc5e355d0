// A step attempt's log. Only the lines in view are in the page, so a
// 100,000-line log scrolls like a 10-line one. Line numbers link to their
// line; lines the step wrote to stderr (they begin with the byte 0x1E in
// the stored log) are marked; ANSI colours become spans (text nodes and
// classes, never HTML from the log); search; follow mode (on while
// scrolled to the end); download (without the marks).

import { h, clear } from './dom.js';

const LINE = 18; // px: every row is one line high, so the window is arithmetic
const OVERSCAN = 40;

/** The SGR state a line starts in; colours 0-15 are classes, others RGB. */
const PLAIN = Object.freeze({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });

// ESC [ params letter (CSI), ESC ] ... BEL or ESC \ (OSC), or ESC and one byte.
const ESCAPES = /\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;

function rgb256(n) {
  if (n < 16) return n;
  if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v},${v},${v})`; }
  const c = n - 16;
  const level = (x) => (x ? 55 + x * 40 : 0);
  return `rgb(${level(Math.floor(c / 36))},${level(Math.floor(c / 6) % 6)},${level(c % 6)})`;
}

/** The state after the SGR parameters `codes`. */
function sgr(state, codes) {
  const s = { ...state };
  const list = codes === '' ? [0] : codes.split(';').map((x) => Number(x) || 0);
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === 0) Object.assign(s, PLAIN);
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) { s.bold = false; s.dim = false; }
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) s.fg = null;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) s.bg = null;
    else if ((c === 38 || c === 48) && list[i + 1] === 5) {
      s[c === 38 ? 'fg' : 'bg'] = rgb256(list[i + 2] || 0); i += 2;
    } else if ((c === 38 || c === 48) && list[i + 1] === 2) {
      s[c === 38 ? 'fg' : 'bg'] = `rgb(${list[i + 2] || 0},${list[i + 3] || 0},${list[i + 4] || 0})`; i += 4;
    }
  }
  return s;
}

/** A line as runs of [text, state], and the state it ends in. */
function parse(line, start) {
  const runs = [];
  let state = start;
  let at = 0;
  ESCAPES.lastIndex = 0;
  let m;
  while ((m = ESCAPES.exec(line))) {
    if (m.index > at) runs.push([line.slice(at, m.index), state]);
    if (m[2] === 'm') state = sgr(state, m[1]);
    at = ESCAPES.lastIndex;
    if (m[0] === '') ESCAPES.lastIndex++;
  }
  if (at < line.length) runs.push([line.slice(at), state]);
  return { runs, end: state };
}

/** The byte before each line a step wrote to stderr. */
const MARK = '\x1e';

/** Whether a log line came from stderr. */
export function isStderr(line) {
  return line.startsWith(MARK);
}

function unmarked(line) {
  return line.includes(MARK) ? line.split(MARK).join('') : line;
}

/** The text of a line as a terminal shows it: marks and escapes gone, after its last CR. */
export function plain(line) {
  const bare = unmarked(line);
  const text = bare.includes('\x1b') ? bare.replace(ESCAPES, '') : bare;
  const cr = text.lastIndexOf('\r', text.length - 2);
  return cr >= 0 ? text.slice(cr + 1) : text.replace(/\r$/, '');
}

function styled(text, state) {
  if (state === PLAIN) return document.createTextNode(text);
  const classes = [];
  const style = {};
  if (typeof state.fg === 'number') classes.push(`a-fg${state.fg}`); else if (state.fg) style.color = state.fg;
  if (typeof state.bg === 'number') classes.push(`a-bg${state.bg}`); else if (state.bg) style.backgroundColor = state.bg;
  if (state.bold) classes.push('a-b');
  if (state.dim) classes.push('a-d');
  if (state.italic) classes.push('a-i');
  if (state.underline) classes.push('a-u');
  return h('span', { class: classes.join(' ') || null, style }, text);
}

/** Appends `text` to `el`, the matches of `needle` (lower case) marked. */
function marked(el, text, state, needle) {
  if (!needle) { el.append(styled(text, state)); return; }
  const lower = text.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(needle); i >= 0; i = lower.indexOf(needle, at)) {
    if (i > at) el.append(styled(text.slice(at, i), state));
    el.append(h('mark', {}, styled(text.slice(i, i + needle.length), state)));
    at = i + needle.length;
  }
  if (at < text.length) el.append(styled(text.slice(at), state));
}

/**
 * A log viewer. `lineHref(n)` is line n's link; `onLine(n)` is called when
 * a line number is chosen.
 */
export function logViewer({ lineHref = () => null, onLine = () => {}, fileName = () => 'log.txt' } = {}) {
  let lines = [''];
  // The state a line starts in, where it is not plain (index -> state).
  let starts = new Map();
  let carry = PLAIN;
  let follow = true;
  let target = null;
  // A line asked for that has not come yet.
  let pending = null;
  let needle = '';
  let hits = [];
  let hit = -1;
  let scheduled = false;
  let ended = false;
  // For benchmarks: marked once a whole log's window is first drawn.
  let shown = false;

  const spacer = h('div', { class: 'log-spacer' });
  const rows = h('div', { class: 'log-rows' });
  const view = h('div', { class: 'log-view', tabindex: 0, role: 'log', 'aria-label': 'log lines' }, spacer, rows);
  const count = h('span', { class: 'muted log-count' });
  const search = h('input', {
    type: 'search', placeholder: 'search the log', 'aria-label': 'search the log', class: 'log-search',
    oninput: () => find(search.value),
    onkeydown: (e) => { if (e.key === 'Enter') { e.preventDefault(); step(e.shiftKey ? -1 : 1); } },
  });
  const found = h('span', { class: 'muted log-found', role: 'status' });
  const followBox = h('input', { type: 'checkbox', checked: true, onchange: () => setFollow(followBox.checked) });
  const bar = h('div', { class: 'log-bar' },
    search, h('button', { type: 'button', title: 'previous match (Shift+Enter)', 'aria-label': 'previous match', onclick: () => step(-1) }, '↑'),
    h('button', { type: 'button', title: 'next match (Enter)', 'aria-label': 'next match', onclick: () => step(1) }, '↓'),
    found, h('span', { class: 'spacer' }), count,
    h('label', { class: 'log-follow' }, followBox, ' follow'),
    h('button', { type: 'button', onclick: () => setFollow(true) }, 'End'),
    h('button', { type: 'button', onclick: download }, 'Download'));
  const element = h('div', { class: 'log-frame' }, bar, view);

  function total() {
    // A trailing newline leaves an empty last line that is not a line.
    return lines[lines.length - 1] === '' ? lines.length - 1 : lines.length;
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => { scheduled = false; render(); });
  }

  /** The scrollable height, for the lines there are now. */
  function size() {
    spacer.style.height = `${total() * LINE}px`;
  }

  function render() {
    const n = total();
    size();
    count.textContent = `${n.toLocaleString()} line${n === 1 ? '' : 's'}${ended ? '' : ' · live'}`;
    if (follow) view.scrollTop = view.scrollHeight;
    const first = Math.max(0, Math.floor(view.scrollTop / LINE) - OVERSCAN);
    const last = Math.min(n, Math.ceil((view.scrollTop + view.clientHeight) / LINE) + OVERSCAN);
    rows.style.transform = `translateY(${first * LINE}px)`;
    clear(rows);
    const current = hit >= 0 ? hits[hit] : -1;
    for (let i = first; i < last; i++) {
      const { runs } = parse(unmarked(lines[i]), starts.get(i) || PLAIN);
      const text = h('span', { class: 'lt' });
      for (const [t, st] of runs) marked(text, t, st, needle);
      const cls = ['log-line'];
      if (isStderr(lines[i])) cls.push('stderr');
      if (i + 1 === target) cls.push('target');
      if (i === current) cls.push('hit');
      rows.append(h('div', { class: cls.join(' '), 'data-line': i + 1 },
        h('a', { class: 'ln', href: lineHref(i + 1), onclick: (e) => { e.preventDefault(); mark(i + 1); onLine(i + 1); } }, String(i + 1)),
        text));
    }
    if (ended && !shown) { shown = true; performance.mark('weft:log-shown'); }
  }

  function setFollow(on) {
    follow = on;
    followBox.checked = on;
    if (on) schedule();
  }

  // Scrolled to the end, it follows; scrolled up, it stays put.
  view.addEventListener('scroll', () => {
    const atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - LINE;
    if (atEnd !== follow) { follow = atEnd; followBox.checked = atEnd; }
    schedule();
  });

  /** Adds text as it comes. */
  function append(text) {
    if (!text) return;
    const parts = text.split('\n');
    lines[lines.length - 1] += parts[0];
    for (let i = 1; i < parts.length; i++) {
      // The line before is whole now: carry its colours on.
      const done = lines.length - 1;
      if (carry !== PLAIN || lines[done].includes('\x1b')) {
        carry = parse(lines[done], starts.get(done) || PLAIN).end;
      }
      lines.push(parts[i]);
      if (carry !== PLAIN) starts.set(lines.length - 1, carry);
    }
    if (needle) refind();
    if (pending && pending <= total()) { reveal(pending - 1); pending = null; }
    schedule();
  }

  // Lines searched so far for `needle`: a growing log is searched in its
  // new lines only.
  let searched = 0;

  function refind(fresh = false) {
    if (fresh) { hits = []; searched = 0; }
    // The last line may still grow: searched again next time.
    if (hits.length && hits[hits.length - 1] >= searched) hits.pop();
    const n = total();
    for (let i = searched; i < n; i++) if (plain(lines[i]).toLowerCase().includes(needle)) hits.push(i);
    searched = Math.max(0, n - 1);
    if (hit >= hits.length) hit = hits.length - 1;
    found.textContent = needle ? (hits.length ? `${hit + 1} of ${hits.length}` : 'no match') : '';
  }

  function find(q) {
    needle = q.toLowerCase();
    hit = -1;
    refind(true);
    if (hits.length) { hit = 0; found.textContent = `1 of ${hits.length}`; reveal(hits[0]); }
    schedule();
  }

  function step(by) {
    if (!hits.length) return;
    hit = (hit + by + hits.length) % hits.length;
    found.textContent = `${hit + 1} of ${hits.length}`;
    reveal(hits[hit]);
    schedule();
  }

  /** Scrolls line index `i` into the middle of the view. */
  function reveal(i) {
    setFollow(false);
    // Tall enough first: a scroll past the end stops at the end.
    size();
    view.scrollTop = Math.max(0, i * LINE - view.clientHeight / 2);
    schedule();
  }

  function mark(n) {
    target = n;
    schedule();
  }

  function download() {
    const blob = new Blob([unmarked(lines.join('\n'))], { type: 'text/plain' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: fileName() });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  return {
    element,
    append,
    /** Empties it for another attempt's log. */
    reset() {
      lines = [''];
      starts = new Map();
      carry = PLAIN;
      hits = [];
      hit = -1;
      ended = false;
      shown = false;
      target = null;
      pending = null;
      found.textContent = '';
      if (needle) refind(true);
      schedule();
    },
    /** The log is whole: no more will come. */
    end() { ended = true; schedule(); },
    /** Opens at the end (following) or at the top. */
    startAt(end) { setFollow(end); if (!end) view.scrollTop = 0; schedule(); },
    /** Shows line `n` (1-based) marked, now or once it has come. */
    goTo(n) {
      target = n;
      if (n <= total()) reveal(n - 1); else { pending = n; setFollow(false); }
      schedule();
    },
    lineCount: total,
    search: (q) => { search.value = q; find(q); },
  };
}
