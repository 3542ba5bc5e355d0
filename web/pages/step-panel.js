// The run page's side panel for one step: its times (waiting apart from
// running, clocks ticking while it runs), why it failed, its tasks (by
// state, failed first, with their items), its attempts and hooks, an
// approval form, and its outputs collapsed to a size line.

import { api } from '../api.js';
import { h, badge, clock, time, bytes, errorBox, clear } from '../dom.js';
import { artifactList } from '../artifacts.js';

const TASKS_SHOWN = 200;
const OUTPUT_LINES = 8;
// Failed first, then what is still going, then the rest.
const ORDER = { failed: 0, running: 1, 'retry-waiting': 2, 'awaiting-approval': 3, queued: 4, waiting: 5, cancelled: 6, succeeded: 7 };

function finished(status) {
  return ['succeeded', 'failed', 'cancelled'].includes(status);
}

/// Not run: whose cached result it reused, linking to that run.
export function cachedFrom(c) {
  return h('span', { class: 'cached', title: 'not run: a result with the same cache key was reused' },
    'cached from run ', h('a', { href: `#/runs/${encodeURIComponent(c.run)}` }, c.run), `, step ${c.step}`);
}

// A sub-workflow step's attempt names its child run: a link to it.
function childLink(worker) {
  const child = /^run (\S+)$/.exec(worker || '');
  return child ? h('a', { href: `#/runs/${encodeURIComponent(child[1])}` }, `run ${child[1]}`) : worker || '';
}

/** Waited and ran, apart: a step of a busy run may wait far longer than it runs. */
function times(step) {
  const waitEnd = step.running_at || step.finished_at;
  const waiting = step.reason && step.reason.startsWith('waiting:');
  return h('dl', { class: 'times' },
    h('dt', {}, 'Ready'), h('dd', {}, time(step.started_at) || '—'),
    h('dt', {}, 'Waited'), h('dd', { class: 'waited' }, step.started_at ? clock(step.started_at, waitEnd) : '—',
      waiting ? h('span', { class: 'muted' }, ` (${step.reason.slice('waiting:'.length).trim()})`) : ''),
    h('dt', {}, 'Ran'), h('dd', { class: 'ran' }, step.running_at ? clock(step.running_at, step.finished_at) : '—'));
}

/** Outputs as a size line and their first lines; all of them on demand; copy as JSON. */
function outputsBox(outputs, open) {
  const text = JSON.stringify(outputs, null, 2);
  const lines = text.split('\n');
  const pre = h('pre', { class: 'outputs' }, open.all ? text : lines.slice(0, OUTPUT_LINES).join('\n'));
  const said = h('span', { class: 'muted', role: 'status' });
  const more = lines.length > OUTPUT_LINES && !open.all
    ? h('button', { type: 'button', onclick: () => { open.all = true; clear(pre).append(text); more.remove(); } }, `Show all ${lines.length.toLocaleString()} lines`)
    : null;
  return h('div', { class: 'outputs-box' },
    h('h3', {}, 'Outputs'),
    h('div', { class: 'bar' },
      h('span', { class: 'size' }, `${lines.length.toLocaleString()} lines · ${bytes(new TextEncoder().encode(text).length)}`),
      h('button', {
        type: 'button', onclick: async () => {
          try { await navigator.clipboard.writeText(JSON.stringify(outputs)); said.textContent = 'copied'; } catch (e) { said.textContent = 'copying was refused'; }
        },
      }, 'Copy JSON'), said),
    pre, more);
}

/**
 * The panel's content for `step` (GET .../steps/{step}); `chosen` holds the
 * task, attempt, task filter and "show all"; `act` has the page's actions.
 */
export function stepDetails(runId, view, step, chosen, act) {
  const tasks = step.tasks;
  const task = tasks.find((t) => t.id === chosen.task);
  const last = task && task.attempts.length ? task.attempts[task.attempts.length - 1].number : null;
  const attempt = chosen.attempt ?? last;
  const parts = [
    h('h2', {}, step.name || step.id, ' ', badge(step.status)),
    step.name ? h('p', { class: 'muted' }, h('code', {}, step.id)) : null,
    step.reason && !step.reason.startsWith('waiting:') ? h('p', { class: 'error-text reason' }, step.reason) : null,
    step.reused_from ? h('p', { class: 'muted' }, `outputs reused from run ${step.reused_from}`) : null,
    step.cached_from ? h('p', { class: 'muted' }, cachedFrom(step.cached_from)) : null,
    times(step),
  ];
  const artifacts = artifactList(runId, step.artifacts);
  if (artifacts) parts.push(...artifacts);
  if (tasks.length > 1 || step.fan_out) parts.push(...taskList(tasks, chosen, act));
  if (task && task.attempts.length) {
    parts.push(h('h3', {}, `Attempts of ${task.id}`),
      h('table', { class: 'attempts' },
        h('thead', {}, h('tr', {}, ['', 'Worker', 'Queued', 'Ran', 'Exit', 'Error'].map((t) => h('th', {}, t)))),
        h('tbody', {}, task.attempts.flatMap((a) => attemptRow(task, a, attempt, act)))));
  }
  const current = task && task.attempts.find((a) => a.number === attempt);
  if (current && current.hooks && current.hooks.length) {
    parts.push(h('h3', {}, `Hooks of attempt ${attempt}`),
      h('ul', { class: 'hooks' }, current.hooks.map((k) => h('li', { class: k.error ? 'error-text' : '' },
        `${k.phase} ${k.plugin}: ${k.error ? `failed: ${k.error}` : 'ok'} in ${k.ms < 1 ? k.ms.toFixed(2) : k.ms.toFixed(1)} ms`))));
  }
  if (step.approval && task && task.status === 'awaiting-approval') parts.push(approvalForm(runId, step, act));
  if (finished(view.status) && view.status !== 'succeeded') {
    parts.push(h('button', { type: 'button', onclick: () => act.retry(step.id) }, 'Retry from this step'));
  }
  if (step.outputs && Object.keys(step.outputs).length) parts.push(outputsBox(step.outputs, chosen.outputs));
  return { parts: parts.filter(Boolean), task, attempt };
}

/** A fan-out's tasks: filter buttons with counts, failed first, items shown. */
function taskList(tasks, chosen, act) {
  const counts = {};
  for (const t of tasks) counts[t.status] = (counts[t.status] || 0) + 1;
  const filters = ['all', ...Object.keys(counts).sort((a, b) => (ORDER[a] ?? 9) - (ORDER[b] ?? 9))];
  const wanted = chosen.filter in counts || chosen.filter === 'all' ? chosen.filter : 'all';
  const picked = tasks.filter((t) => wanted === 'all' || t.status === wanted)
    .map((t, i) => [t, i])
    .sort(([a, i], [b, j]) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9) || i - j)
    .map(([t]) => t);
  const shown = chosen.showAll ? picked : picked.slice(0, TASKS_SHOWN);
  return [
    h('h3', {}, `Tasks (${tasks.length.toLocaleString()})`),
    h('div', { class: 'task-filter', role: 'group', 'aria-label': 'show tasks' }, filters.map((f) => h('button', {
      type: 'button', 'aria-pressed': String(f === wanted), 'data-filter-state': f,
      onclick: () => act.filterTasks(f),
    }, f === 'all' ? `all ${tasks.length.toLocaleString()}` : `${f} ${counts[f].toLocaleString()}`))),
    h('ul', { class: 'tasks' }, shown.map((t) => h('li', { 'data-task': t.id },
      h('button', { type: 'button', class: `link${t.id === chosen.task ? ' current' : ''}`, title: t.item || t.id, onclick: () => act.chooseTask(t.id) }, t.id),
      t.item != null ? h('span', { class: 'item', title: t.item }, t.item.length > 24 ? `${t.item.slice(0, 23)}…` : t.item) : '',
      ' ', badge(t.status)))),
    picked.length > shown.length ? h('button', { type: 'button', onclick: act.showAllTasks }, `Show all ${picked.length.toLocaleString()}`) : null,
  ];
}

function attemptRow(task, a, chosenAttempt, act) {
  const current = chosenAttempt === a.number;
  const row = h('tr', { class: current ? 'current' : '' },
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => act.chooseAttempt(task.id, a.number) }, `#${a.number}`)),
    h('td', {}, a.cached_from ? cachedFrom(a.cached_from) : childLink(a.worker)),
    h('td', { class: 'queued' }, clock(a.queued_at, a.started_at || a.finished_at)),
    h('td', { class: 'ran' }, a.started_at ? clock(a.started_at, a.finished_at) : 'not yet'),
    h('td', {}, a.exit_code ?? ''),
    h('td', { class: 'error-text' },
      a.error_kind ? h('span', { class: 'kind', title: 'what kind of failure' }, a.error_kind) : '',
      a.error || ''));
  if (!a.executions || !a.executions.length) return row;
  // At-least-once delivery ran it more than once: every execution is shown.
  const ran = a.executions.map((e) => `${e.worker} (${e.error == null ? 'no result' : e.error === '' ? 'ok' : `failed: ${e.error}`})`);
  return [row, h('tr', { class: 'executions' },
    h('td', {}), h('td', { colspan: '5', class: 'notice' }, `ran ${a.executions.length} times: ${ran.join(', ')}`))];
}

// A step waiting for a person: its inputs, a comment, Approve and Reject.
function approvalForm(runId, step, act) {
  const fields = Object.entries(step.approval.inputs || {}).map(([name, type]) => {
    const input = type === 'boolean'
      ? h('input', { type: 'checkbox', name })
      : h('input', { type: type === 'number' ? 'number' : 'text', name, required: true, step: 'any' });
    return h('label', {}, `${name} (${type}) `, input);
  });
  const comment = h('input', { type: 'text', name: 'comment', placeholder: 'why (optional)' });
  const said = h('p', { role: 'status' });
  const send = async (approve) => {
    const inputs = {};
    for (const [name, type] of Object.entries(step.approval.inputs || {})) {
      const el = form.querySelector(`[name="${CSS.escape(name)}"]`);
      inputs[name] = type === 'boolean' ? el.checked : type === 'number' ? Number(el.value) : el.value;
    }
    try {
      await api(`/api/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step.id)}/decision`,
        { method: 'POST', json: { approve, inputs: approve ? inputs : {}, comment: comment.value || null } });
      clear(said).append(approve ? 'Approved.' : 'Rejected.');
      act.reload();
    } catch (e) { clear(said).append(errorBox(e)); }
  };
  const form = h('form', { class: 'approval', onsubmit: (e) => { e.preventDefault(); send(true); } },
    h('h3', {}, 'Waiting for approval'),
    h('p', { class: 'muted' }, `May decide: ${[...step.approval.roles, 'admin'].join(', ')}`),
    ...fields, comment,
    h('div', { class: 'bar' },
      h('button', { type: 'submit' }, 'Approve'),
      h('button', { type: 'button', class: 'danger', onclick: () => send(false) }, 'Reject')),
    said);
  return form;
}

