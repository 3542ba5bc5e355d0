// Saved workflows: the list; one workflow's versions, its text, a diff
// between two versions and its recent runs; and a run form built from its
// `[params]` (each input typed by its default, checked before it is sent).
// The workflow and versions chosen are in the URL.

import { api } from '../api.js';
import { h, clear, badge, ago, time, errorBox } from '../dom.js';

// Most cells of the comparison table (4 bytes each): two versions whose
// changed middles are larger than this are not compared here.
const MAX_DIFF_CELLS = 4_000_000;

/** Lines of `a` and `b` as [op, text], op ' ', '-' or '+' (LCS). */
export function diffLines(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  // What both share at the start and the end needs no table.
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const xs = x.slice(head, x.length - tail);
  const ys = y.slice(head, y.length - tail);
  const n = xs.length;
  const m = ys.length;
  if ((n + 1) * (m + 1) > MAX_DIFF_CELLS) return null;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = xs[i] === ys[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = x.slice(0, head).map((l) => [' ', l]);
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (xs[i] === ys[j]) { out.push([' ', xs[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(['-', xs[i++]]);
    else out.push(['+', ys[j++]]);
  }
  while (i < n) out.push(['-', xs[i++]]);
  while (j < m) out.push(['+', ys[j++]]);
  return out.concat(x.slice(x.length - tail).map((l) => [' ', l]));
}

/** A parameter's input, typed by its default. */
function paramInput(name, value) {
  if (typeof value === 'boolean') return h('input', { type: 'checkbox', name, checked: value });
  if (typeof value === 'number') return h('input', { type: 'number', name, step: 'any', value: String(value), required: true });
  if (typeof value === 'string') return h('input', { type: 'text', name, value });
  return h('textarea', { name, rows: 3, class: 'json', spellcheck: 'false' }, JSON.stringify(value));
}

/** The form's values as the API's text params, or the first problem. */
function readParams(form, params) {
  const out = {};
  for (const [name, value] of Object.entries(params)) {
    const el = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (typeof value === 'boolean') out[name] = String(el.checked);
    else if (typeof value === 'number') {
      if (el.value.trim() === '' || !Number.isFinite(Number(el.value))) return { problem: `${name}: a number, please` };
      out[name] = String(Number(el.value));
    } else if (typeof value === 'string') out[name] = el.value;
    else {
      try {
        const parsed = JSON.parse(el.value);
        if (Array.isArray(parsed) !== Array.isArray(value)) return { problem: `${name}: ${Array.isArray(value) ? 'a JSON list' : 'a JSON object'}, please` };
        out[name] = JSON.stringify(parsed);
      } catch (e) { return { problem: `${name}: not JSON (${e.message})` }; }
    }
  }
  return { params: out };
}

export function mount(el) {
  const abort = new AbortController();
  const asked = new URLSearchParams(location.hash.split('?')[1] || '');
  const list = h('ul', { class: 'workflow-list' });
  const detail = h('section', { class: 'workflow-detail', 'aria-label': 'workflow' }, h('p', { class: 'hint' }, 'Choose a saved workflow.'));
  const problem = h('div');
  el.append(h('div', { class: 'bar' }, h('h1', {}, 'Workflows'), h('span', { class: 'spacer' }),
    h('a', { class: 'button', href: '#/editor' }, 'New workflow')), problem,
    h('div', { class: 'workflows' }, list, detail));

  function setUrl(name, version, against) {
    const q = new URLSearchParams();
    if (name) q.set('name', name);
    if (version) q.set('version', String(version));
    if (against) q.set('diff', String(against));
    const next = `#/workflows${q.toString() ? `?${q}` : ''}`;
    if (location.hash !== next) history.replaceState(null, '', next);
  }

  async function open(name, version, against) {
    setUrl(name, version, against);
    for (const li of list.children) li.classList.toggle('current', li.dataset.workflow === name);
    try {
      const latest = await api(`/api/workflows/${encodeURIComponent(name)}`, { signal: abort.signal });
      const wanted = version && version !== latest.version
        ? await api(`/api/workflows/${encodeURIComponent(name)}?version=${version}`, { signal: abort.signal })
        : latest;
      const older = against
        ? await api(`/api/workflows/${encodeURIComponent(name)}?version=${against}`, { signal: abort.signal })
        : null;
      const runs = await api(`/api/runs?workflow=${encodeURIComponent(name)}&limit=10`, { signal: abort.signal }).catch(() => []);
      show(latest, wanted, older, runs);
    } catch (e) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(e));
    }
  }

  function show(latest, w, older, runs) {
    const versions = [];
    for (let v = latest.version; v >= 1 && versions.length < 50; v--) versions.push(v);
    const pick = h('select', { 'aria-label': 'version', onchange: () => open(w.name, Number(pick.value), null) },
      versions.map((v) => h('option', { value: v, selected: v === w.version }, `version ${v}${v === latest.version ? ' (latest)' : ''}`)));
    const against = h('select', { 'aria-label': 'compare with', onchange: () => open(w.name, w.version, Number(against.value) || null) },
      h('option', { value: '' }, 'compare with…'),
      versions.filter((v) => v !== w.version).map((v) => h('option', { value: v, selected: older && older.version === v }, `version ${v}`)));
    let body;
    if (older) {
      const diff = diffLines(older.source, w.source);
      body = diff
        ? h('pre', { class: 'diff', 'aria-label': `changes from version ${older.version} to ${w.version}` },
          diff.map(([op, text]) => h('span', { class: op === '+' ? 'add' : op === '-' ? 'del' : 'same' }, `${op} ${text}\n`)))
        : h('p', { class: 'notice' }, 'Too long to compare here.');
    } else body = h('pre', { class: 'source' }, w.source);
    clear(detail).append(
      h('h2', {}, w.name, ' ', h('small', { class: 'muted' }, `saved ${time(w.saved_at)}`)),
      h('div', { class: 'bar' }, pick, against),
      runForm(w),
      h('h3', {}, 'Recent runs'),
      runs.length
        ? h('ul', { class: 'recent' }, runs.map((r) => h('li', {}, h('a', { href: `#/runs/${encodeURIComponent(r.id)}` }, r.id), ' ', badge(r.status), ' ', h('span', { class: 'muted' }, `${r.file} · ${ago(r.created_at)}`))))
        : h('p', { class: 'muted' }, 'No runs yet.'),
      h('h3', {}, older ? `Changes from version ${older.version}` : `Version ${w.version}`),
      body);
  }

  function runForm(w) {
    const params = w.params || {};
    const said = h('div', { role: 'status' });
    const fields = Object.entries(params).map(([name, value]) => h('label', { class: 'param' },
      h('span', {}, name, h('small', { class: 'muted' }, ` ${Array.isArray(value) ? 'list' : value === null ? 'null' : typeof value}`)),
      paramInput(name, value)));
    const form = h('form', {
      class: 'run-form', 'aria-label': 'run it',
      onsubmit: async (e) => {
        e.preventDefault();
        const { params: values, problem: bad } = readParams(form, params);
        if (bad) { clear(said).append(errorBox(bad)); return; }
        try {
          const r = await api(`/api/workflows/${encodeURIComponent(w.name)}/runs`, { method: 'POST', json: { version: w.version, params: values } });
          location.hash = `#/runs/${encodeURIComponent(r.id)}`;
        } catch (err) { clear(said).append(errorBox(err)); }
      },
    },
    h('h3', {}, `Run version ${w.version}`),
    fields.length ? fields : h('p', { class: 'muted' }, 'No parameters.'),
    h('button', { type: 'submit', class: 'primary' }, 'Run'), said);
    if (!w.params) form.prepend(h('p', { class: 'notice' }, 'This version no longer reads cleanly: run it from the CLI to see why.'));
    return form;
  }

  (async () => {
    try {
      const saved = await api('/api/workflows', { signal: abort.signal });
      clear(list).append(...saved.map((w) => h('li', { 'data-workflow': w.name },
        h('button', { type: 'button', class: 'link', onclick: () => open(w.name, null, null) }, w.name),
        h('small', { class: 'muted' }, ` v${w.version} · ${ago(w.saved_at)}`))));
      if (!saved.length) list.append(h('li', { class: 'empty' }, 'Nothing saved yet: save from the editor or with `weft workflows save`.'));
      const name = asked.get('name');
      if (name) open(name, Number(asked.get('version')) || null, Number(asked.get('diff')) || null);
    } catch (e) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(e));
    }
  })();
  return () => abort.abort();
}
