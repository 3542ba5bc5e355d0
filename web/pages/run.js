// One run: its graph (laid out by the server) or timeline, coloured live;
// a side panel with the chosen step's outputs, artifacts, tasks, attempts
// and live log.

import { api, stream } from '../api.js';
import { h, clear, badge, duration, time, throttle, errorBox } from '../dom.js';
import { drawGraph, groupStatus } from '../graph.js';
import { timeline } from '../timeline.js';
import { artifactList } from '../artifacts.js';

const TASKS_SHOWN = 200;

/** Node states for the graph: one per step, and one per group of steps. */
function nodeStates(view, groups) {
  const states = view.steps.map((step) => ({ id: step.id, status: step.status, fan_out: step.fan_out, counts: step.counts }));
  if (!groups.length) return states;
  const status = new Map(view.steps.map((step) => [step.id, step.status]));
  for (const group of groups) {
    const statuses = group.members.map((m) => status.get(m) || 'pending');
    const counts = {};
    for (const st of statuses) counts[st] = (counts[st] || 0) + 1;
    states.push({ id: group.id, status: groupStatus(statuses), fan_out: true, counts });
  }
  return states;
}

function finished(status) {
  return ['succeeded', 'failed', 'cancelled'].includes(status);
}

export function mount(el, [id]) {
  const abort = new AbortController();
  // The run's states (GET .../states: small, polled on every change) and
  // the chosen step in full (GET .../steps/{step}).
  let view = null;
  let stepView = null;
  let graph = null;
  // Groups of sibling steps the graph draws as one node: [{id, members}].
  let groups = [];
  let mode = sessionStorage.getItem('weft.run.mode') || 'graph';
  let chosen = { step: null, group: null, task: null, attempt: null, showAll: false };
  let logFor = null;
  let logAbort = null;

  const head = h('div', { class: 'bar' });
  const problem = h('div');
  const canvas = h('section', { class: 'canvas', 'aria-label': 'run graph' });
  const panel = h('aside', { class: 'panel', 'aria-label': 'step' }, h('p', { class: 'hint' }, 'Choose a step to see its outputs, attempts and log.'));
  const info = h('div');
  const logBox = h('pre', { class: 'log', 'aria-label': 'log', tabindex: 0 });
  const logHead = h('div', { class: 'log-head' });
  const extra = h('div', { class: 'extra' });
  el.append(head, problem, h('div', { class: 'split' }, canvas, panel), extra);

  function header() {
    const r = view;
    const end = r.finished_at || Date.now();
    const actions = [];
    if (!finished(r.status)) {
      actions.push(h('button', { type: 'button', class: 'danger', onclick: cancel }, 'Cancel'));
    } else if (r.status !== 'succeeded') {
      actions.push(h('button', { type: 'button', onclick: () => retry(null) }, 'Retry failed'));
    }
    const tab = (name, text) => h('button', {
      type: 'button', 'aria-pressed': String(mode === name), class: 'tab',
      onclick: () => { mode = name; sessionStorage.setItem('weft.run.mode', mode); draw(); header(); },
    }, text);
    clear(head).append(
      h('h1', {}, r.workflow, ' ', h('small', {}, r.id)), badge(r.status),
      h('span', { class: 'muted' }, `${time(r.created_at)} · ${duration(end - r.created_at)}${r.submitted_by ? ` · by ${r.submitted_by}` : ''}${r.priority ? ` · priority ${r.priority}` : ''}`),
      h('span', { class: 'spacer' }), tab('graph', 'Graph'), tab('timeline', 'Timeline'), ...actions);
    // A sub-workflow's run links to the run and step that started it.
    if (r.parent) {
      head.append(h('p', { class: 'muted' }, 'Sub-workflow of run ',
        h('a', { href: `#/runs/${encodeURIComponent(r.parent.run)}` }, r.parent.run),
        `, step ${r.parent.task.index == null ? r.parent.task.step : `${r.parent.task.step}[${r.parent.task.index}]`}`));
    }
    // A run held back by its concurrency key says what it waits for.
    if (r.waiting) head.append(h('p', { class: 'waiting', role: 'status' }, `Waiting: ${r.waiting}`));
    else if (r.concurrency && !finished(r.status)) {
      const c = r.concurrency;
      head.append(h('p', { class: 'muted' }, `Concurrency key ${c.key} (limit ${c.limit}, ${c.policy}, priority ${c.priority})`));
    }
  }

  async function cancel() {
    try { await api(`/api/runs/${encodeURIComponent(id)}/cancel`, { method: 'POST' }); }
    catch (e) { clear(problem).append(errorBox(e)); }
  }

  async function retry(from) {
    try {
      const r = await api(`/api/runs/${encodeURIComponent(id)}/retry`, { method: 'POST', json: from ? { from } : {} });
      location.hash = `#/runs/${encodeURIComponent(r.id)}`;
    } catch (e) { clear(problem).append(errorBox(e)); }
  }

  function select(step) {
    const group = groups.find((g) => g.id === step) || null;
    chosen = { step: group ? null : step, group, task: null, attempt: null, showAll: false };
    stepView = null;
    if (graph) graph.select(step);
    if (group) showGroup();
    else loadStep();
  }

  /** A group's steps, each with its state; choosing one opens it. */
  function showGroup() {
    const group = chosen.group;
    if (!group) return;
    const status = new Map(view.steps.map((step) => [step.id, step.status]));
    const statuses = group.members.map((m) => status.get(m) || 'pending');
    const shown = chosen.showAll ? group.members : group.members.slice(0, TASKS_SHOWN);
    clear(info).append(
      h('h2', {}, `${group.members.length} steps`, ' ', badge(groupStatus(statuses))),
      h('p', { class: 'muted' }, 'Steps with the same needs and the same dependents, drawn as one node.'),
      h('ul', { class: 'tasks' }, shown.map((m, i) => h('li', {},
        h('button', { type: 'button', class: 'link', onclick: () => select(m) }, m), ' ', badge(statuses[i])))),
      group.members.length > shown.length
        ? h('button', { type: 'button', onclick: () => { chosen.showAll = true; showGroup(); } }, `Show all ${group.members.length}`) : '');
    // No log for a group: stop following the last step's.
    if (logAbort) logAbort.abort();
    logFor = null;
    clear(panel).append(info);
  }

  async function loadStep() {
    const wanted = chosen.step;
    if (!wanted) return;
    try {
      const got = await api(`/api/runs/${encodeURIComponent(id)}/steps/${encodeURIComponent(wanted)}`, { signal: abort.signal });
      if (chosen.step !== wanted) return;
      stepView = got;
      details();
    } catch (e) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(e));
    }
  }

  function draw() {
    clear(canvas);
    if (mode === 'timeline') {
      canvas.append(timeline(view, select, chosen.step));
    } else if (graph) {
      canvas.append(graph.element);
      graph.update(nodeStates(view, groups));
    }
  }

  // A sub-workflow step's attempt names its child run: a link to it.
  function childLink(worker) {
    const child = /^run (\S+)$/.exec(worker || '');
    return child ? h('a', { href: `#/runs/${encodeURIComponent(child[1])}` }, `run ${child[1]}`) : worker || '';
  }

  function attemptRow(task, a) {
    const current = chosen.task === task.id && chosen.attempt === a.number;
    const row = h('tr', { class: current ? 'current' : '' },
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => { chosen.task = task.id; chosen.attempt = a.number; details(); } }, `#${a.number}`)),
      h('td', {}, a.cached_from ? cachedFrom(a.cached_from) : childLink(a.worker)),
      h('td', {}, a.started_at ? duration((a.finished_at || Date.now()) - a.started_at) : 'queued'),
      h('td', {}, a.exit_code ?? ''),
      h('td', { class: 'error-text' },
        a.error_kind ? h('span', { class: 'kind', title: 'what kind of failure' }, a.error_kind) : '',
        a.error || ''));
    if (!a.executions || !a.executions.length) return row;
    // At-least-once delivery ran it more than once: every execution is shown.
    const ran = a.executions.map((e) => `${e.worker} (${e.error == null ? 'no result' : e.error === '' ? 'ok' : `failed: ${e.error}`})`);
    return [row, h('tr', { class: 'executions' },
      h('td', {}), h('td', { colspan: '4', class: 'notice' }, `ran ${a.executions.length} times: ${ran.join(', ')}`))];
  }

  function details() {
    const step = stepView;
    if (!step || step.id !== chosen.step) return;
    const tasks = step.tasks;
    if (!chosen.task && tasks.length) chosen.task = tasks[0].id;
    const task = tasks.find((t) => t.id === chosen.task);
    const last = task && task.attempts.length ? task.attempts[task.attempts.length - 1].number : null;
    const attempt = chosen.attempt ?? last;

    const parts = [
      h('h2', {}, step.name || step.id, ' ', badge(step.status)),
      step.name ? h('p', { class: 'muted' }, h('code', {}, step.id)) : null,
      step.reason ? h('p', { class: step.reason.startsWith('waiting:') ? 'notice' : 'error-text' }, step.reason) : null,
      step.reused_from ? h('p', { class: 'muted' }, `outputs reused from run ${step.reused_from}`) : null,
      step.cached_from ? h('p', { class: 'muted' }, cachedFrom(step.cached_from)) : null,
      h('dl', {},
        h('dt', {}, 'Started'), h('dd', {}, time(step.started_at) || '—'),
        h('dt', {}, 'Took'), h('dd', {}, step.started_at ? duration((step.finished_at || Date.now()) - step.started_at) : '—')),
    ];
    if (step.outputs && Object.keys(step.outputs).length) {
      parts.push(h('h3', {}, 'Outputs'), h('pre', { class: 'outputs' }, JSON.stringify(step.outputs, null, 2)));
    }
    const artifacts = artifactList(id, step.artifacts);
    if (artifacts) parts.push(...artifacts);
    if (tasks.length > 1 || step.fan_out) {
      const shown = chosen.showAll ? tasks : tasks.slice(0, TASKS_SHOWN);
      parts.push(h('h3', {}, `Tasks (${tasks.length})`),
        h('ul', { class: 'tasks' }, shown.map((t) => h('li', {},
          h('button', { type: 'button', class: `link${t.id === chosen.task ? ' current' : ''}`, onclick: () => { chosen.task = t.id; chosen.attempt = null; details(); } }, t.id),
          ' ', badge(t.status)))),
        tasks.length > shown.length ? h('button', { type: 'button', onclick: () => { chosen.showAll = true; details(); } }, `Show all ${tasks.length}`) : null);
    }
    if (task && task.attempts.length) {
      parts.push(h('h3', {}, `Attempts of ${task.id}`),
        h('table', { class: 'attempts' },
          h('thead', {}, h('tr', {}, ['', 'Worker', 'Took', 'Exit', 'Error'].map((t) => h('th', {}, t)))),
          h('tbody', {}, task.attempts.flatMap((a) => attemptRow(task, a)))));
    }
    const current = task && task.attempts.find((a) => a.number === attempt);
    if (current && current.hooks && current.hooks.length) {
      parts.push(h('h3', {}, `Hooks of attempt ${attempt}`),
        h('ul', { class: 'hooks' }, current.hooks.map((k) => h('li', { class: k.error ? 'error-text' : '' },
          `${k.phase} ${k.plugin}: ${k.error ? `failed: ${k.error}` : 'ok'} in ${k.ms < 1 ? k.ms.toFixed(2) : k.ms.toFixed(1)} ms`))));
    }
    if (step.approval && task && task.status === 'awaiting-approval') parts.push(approvalForm(step));
    if (finished(view.status) && view.status !== 'succeeded') {
      parts.push(h('button', { type: 'button', onclick: () => retry(step.id) }, 'Retry from this step'));
    }
    clear(info).append(...parts.filter(Boolean));
    if (!panel.contains(logBox)) clear(panel).append(info, logHead, logBox);
    follow(task, attempt);
  }

  // A step waiting for a person: its inputs, a comment, Approve and Reject.
  function approvalForm(step) {
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
        await api(`/api/runs/${encodeURIComponent(id)}/steps/${encodeURIComponent(step.id)}/decision`,
          { method: 'POST', json: { approve, inputs: approve ? inputs : {}, comment: comment.value || null } });
        clear(said).append(approve ? 'Approved.' : 'Rejected.');
        loadStep();
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

  function follow(task, attempt) {
    const key = task && attempt ? `${task.id}#${attempt}` : null;
    if (key === logFor) return;
    logFor = key;
    if (logAbort) logAbort.abort();
    clear(logBox);
    clear(logHead);
    if (!key) { logBox.textContent = 'No attempt yet.'; return; }
    logHead.append(h('h3', {}, `Log of ${task.id}, attempt ${attempt}`));
    logAbort = new AbortController();
    const path = `/api/runs/${encodeURIComponent(id)}/logs/${encodeURIComponent(task.id)}/stream?attempt=${attempt}`;
    const signal = AbortSignal.any([abort.signal, logAbort.signal]);
    stream(path, (name, data) => {
      if (name === 'log') {
        const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
        logBox.append(document.createTextNode(data));
        if (atBottom) logBox.scrollTop = logBox.scrollHeight;
        return true;
      }
      if (name === 'end') { logHead.append(h('span', { class: 'muted' }, ' (ended)')); return false; }
      return true;
    }, signal, (on) => { if (on) clear(logBox); });
  }

  function more() {
    const rows = [];
    const params = Object.entries(view.params || {});
    if (params.length) {
      rows.push(h('details', {}, h('summary', {}, `Parameters (${params.length})`),
        h('dl', {}, params.map(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v))]))));
    }
    if (view.plugins && view.plugins.length) {
      rows.push(h('details', {}, h('summary', {}, `Plugins (${view.plugins.length})`),
        h('ul', {}, view.plugins.map((p) => h('li', {}, `${p.reference} → ${p.name}@${p.version} `, h('code', {}, p.sha256.slice(0, 12)))))));
    }
    if (view.admission && view.admission.length) {
      rows.push(h('details', { class: 'admission', open: true }, h('summary', {}, `Admission (${view.admission.length})`),
        h('ul', {}, view.admission.map((d) => h('li', {},
          h('strong', {}, `${d.plugin} ${d.verdict}`), ` (${d.ms.toFixed(1)} ms)`,
          (d.patches || []).length ? ` · patched ${d.patches.map((p) => p.step).join(', ')}` : '',
          (d.reasons || []).length ? h('ul', {}, d.reasons.map((r) => h('li', {}, r.step ? `${r.step}: ${r.message}` : r.message))) : '')))));
    }
    clear(extra).append(...rows);
  }

  async function refresh() {
    try {
      view = await api(`/api/runs/${encodeURIComponent(id)}/states`, { signal: abort.signal });
      const applying = performance.now();
      header();
      if (mode === 'timeline') draw();
      else if (graph) graph.update(nodeStates(view, groups));
      if (chosen.step) loadStep();
      if (chosen.group) showGroup();
      if (!extra.firstChild) more();
      clear(problem);
      // For benchmarks and the curious: how long applying an update took.
      performance.measure('weft:apply-update', { start: applying });
      return view;
    } catch (e) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(e));
      return null;
    }
  }

  (async () => {
    // The run and its layout at once: the graph is drawn when both are in.
    const layout = api(`/api/runs/${encodeURIComponent(id)}/graph`, { signal: abort.signal });
    layout.catch(() => {});
    if (!(await refresh())) return;
    try {
      const drawn = await layout;
      groups = drawn.nodes.filter((n) => n.members && n.members.length);
      graph = drawGraph(drawn, select);
      draw();
      if (drawn.width > canvas.clientWidth) graph.fit();
      performance.mark('weft:graph-drawn');
    } catch (e) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(e));
    }
    if (finished(view.status)) return;
    const tick = throttle(refresh, 250);
    stream(`/api/events?run=${encodeURIComponent(id)}`, () => { tick(); return true; }, abort.signal,
      (on) => { window.dispatchEvent(new CustomEvent('weft:live', { detail: on })); if (on) tick(); });
  })();
  return () => { abort.abort(); if (logAbort) logAbort.abort(); };
}

/// Not run: whose cached result it reused, linking to that run.
function cachedFrom(c) {
  return h('span', { class: 'cached', title: 'not run: a result with the same cache key was reused' },
    'cached from run ', h('a', { href: `#/runs/${encodeURIComponent(c.run)}` }, c.run), `, step ${c.step}`);
}
