// Runs: newest first, filtered by status and workflow (kept in the URL, so
// a filtered list can be linked; workflow names offered as you type),
// updated live from the change stream (a run started elsewhere appears
// without reload).

import { api, request, stream } from '../api.js';
import { h, clear, badge, duration, ago, throttle, errorBox } from '../dom.js';

const STATUSES = ['', 'pending', 'running', 'succeeded', 'failed', 'cancelled'];
const PAGE = 50;

export function mount(el) {
  const abort = new AbortController();
  const inUrl = new URLSearchParams(location.hash.split('?')[1] || '');
  const saved = inUrl.has('status') || inUrl.has('workflow')
    ? { status: inUrl.get('status') || '', workflow: inUrl.get('workflow') || '' }
    : JSON.parse(sessionStorage.getItem('weft.runs.filter') || '{}');
  // Names to pick from: saved workflows' and those of the runs shown.
  const names = h('datalist', { id: 'workflow-names' });
  const known = new Set();
  const offer = (name) => { if (name && !known.has(name)) { known.add(name); names.append(h('option', { value: name })); } };
  api('/api/workflows', { signal: abort.signal }).then((list) => list.forEach((w) => offer(w.name))).catch(() => {});
  const status = h('select', { 'aria-label': 'status', onchange: () => reload() },
    STATUSES.map((s) => h('option', { value: s, selected: saved.status === s }, s || 'any status')));
  const workflow = h('input', {
    type: 'search', placeholder: 'workflow', 'aria-label': 'workflow', 'data-filter': true, list: 'workflow-names',
    value: saved.workflow || '', oninput: throttle(() => reload(), 300),
  });
  const body = h('tbody');
  const more = h('button', { type: 'button', hidden: true, onclick: () => load(true) }, 'Older runs');
  const problem = h('div');
  let cursor = null;
  let shown = PAGE;

  el.append(
    h('div', { class: 'bar' }, h('h1', {}, 'Runs'), h('span', { class: 'spacer' }), status, workflow, names,
      h('a', { class: 'button', href: '#/editor' }, 'New run')),
    problem,
    h('table', { class: 'runs' },
      h('thead', {}, h('tr', {}, ['Run', 'Workflow', 'Status', 'Started', 'Duration', 'By', 'Summary'].map((t) => h('th', {}, t)))),
      body),
    more,
  );

  function query(limit, before) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (status.value) q.set('status', status.value);
    if (workflow.value.trim()) q.set('workflow', workflow.value.trim());
    if (before) q.set('before', before);
    return `/api/runs?${q}`;
  }

  function row(r) {
    const end = r.finished_at || (r.status === 'running' || r.status === 'pending' ? Date.now() : null);
    return h('tr', { 'data-run': r.id },
      h('td', {}, h('a', { href: `#/runs/${encodeURIComponent(r.id)}` }, r.id)),
      h('td', {}, r.workflow),
      h('td', {}, badge(r.status)),
      h('td', { title: new Date(r.created_at).toLocaleString() }, ago(r.created_at)),
      h('td', {}, end ? duration(end - r.created_at) : ''),
      h('td', { class: 'by' }, r.submitted_by || ''),
      h('td', { class: 'summary' }, r.summary || ''));
  }

  async function load(append) {
    try {
      const { body: list, response } = await request(query(append ? PAGE : shown, append ? cursor : null), { signal: abort.signal });
      if (!append) clear(body);
      if (append) shown += list.length;
      for (const r of list) { body.append(row(r)); offer(r.workflow); }
      if (!list.length && !append) body.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No runs yet. Write one in the editor, or run `weft submit`.')));
      cursor = response.headers.get('x-weft-next-before');
      more.hidden = !cursor;
      clear(problem);
    } catch (e) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(e));
    }
  }

  function reload() {
    sessionStorage.setItem('weft.runs.filter', JSON.stringify({ status: status.value, workflow: workflow.value }));
    const q = new URLSearchParams();
    if (status.value) q.set('status', status.value);
    if (workflow.value.trim()) q.set('workflow', workflow.value.trim());
    const next = `#/runs${q.toString() ? `?${q}` : ''}`;
    if (location.hash !== next) history.replaceState(null, '', next);
    load(false);
  }

  const refresh = throttle(() => load(false), 500);
  load(false);
  stream('/api/events', () => { refresh(); }, abort.signal,
    (on) => window.dispatchEvent(new CustomEvent('weft:live', { detail: on })));
  return () => abort.abort();
}
