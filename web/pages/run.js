// One run: its graph (laid out by the server) or timeline, coloured live;
// the first failure named above it and opened; a side panel with the
// chosen step; its log below, full width. Everything chosen (view, step,
// task, attempt, task filter, log line) is in the URL, so a link reopens it.

import { api, stream } from '../api.js';
import { h, clear, badge, clock, time, throttle, errorBox } from '../dom.js';
import { drawGraph, groupStatus } from '../graph.js';
import { timeline } from '../timeline.js';
import { logViewer, plain, isStderr } from '../log.js';
import { stepDetails } from './step-panel.js';

const TAIL_BYTES = 2048;
const TAIL_LINES = 5;

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

function taskPath(task) {
  // `step[3]` stays readable in a path; the server parses it.
  return encodeURIComponent(task).replace(/%5B/g, '[').replace(/%5D/g, ']');
}

export function mount(el, [id]) {
  const abort = new AbortController();
  const asked = new URLSearchParams(location.hash.split('?')[1] || '');
  // The run's states (GET .../states: small, polled on every change) and
  // the chosen step in full (GET .../steps/{step}).
  let view = null;
  let stepView = null;
  let graph = null;
  // Groups of sibling steps the graph draws as one node: [{id, members}].
  let groups = [];
  let mode = asked.get('view') || sessionStorage.getItem('weft.run.mode') || 'graph';
  const chosen = {
    step: asked.get('step'), group: null, task: asked.get('task'),
    attempt: asked.get('attempt') ? Number(asked.get('attempt')) : null,
    filter: asked.get('tasks') || 'all', showAll: false, outputs: { all: false },
  };
  let line = asked.get('line') ? Number(asked.get('line')) : null;
  // A line from the URL waits for its log.
  let lineToShow = line;
  let logFor = null;
  let logAbort = null;
  let confirming = false;
  let tailFor = null;
  let tailLines = null;
  // Whether the layout is in (until then a step id may be a group's).
  let ready = false;

  const head = h('div', { class: 'bar run-head' });
  const banner = h('div');
  const problem = h('div');
  const find = h('input', {
    type: 'search', class: 'graph-find', placeholder: 'find a step (/)', 'aria-label': 'find a step', 'data-filter': true,
    oninput: () => found(false), onkeydown: (e) => { if (e.key === 'Enter') { e.preventDefault(); found(true); } },
  });
  const foundSaid = h('span', { class: 'muted', role: 'status' });
  const canvas = h('section', { class: 'canvas', 'aria-label': 'run graph' });
  const info = h('div');
  const panel = h('aside', { class: 'panel', 'aria-label': 'step' }, h('p', { class: 'hint' }, 'Choose a step to see its outputs, attempts and log.'));
  const logHead = h('div', { class: 'log-head' });
  const viewer = logViewer({
    lineHref: (n) => url({ line: n }),
    onLine: (n) => { line = n; saveUrl(); },
    fileName: () => `${id}-${(logFor || 'log').replace(/[^\w.[\]-]+/g, '_')}.log`,
  });
  const logArea = h('section', { class: 'log-area', 'aria-label': 'step log', hidden: true }, logHead, viewer.element);
  const extra = h('div', { class: 'extra' });
  el.append(head, banner, problem, h('div', { class: 'bar' }, find, foundSaid),
    h('div', { class: 'split' }, canvas, panel), logArea, extra);

  /** This page's URL with what is chosen (and `over` on top). */
  function url(over = {}) {
    const p = new URLSearchParams();
    const want = { view: mode === 'graph' ? null : mode, step: chosen.group ? chosen.group.id : chosen.step, task: chosen.task !== chosen.step ? chosen.task : null, attempt: chosen.attempt, tasks: chosen.filter === 'all' ? null : chosen.filter, line, ...over };
    for (const [k, v] of Object.entries(want)) if (v !== null && v !== undefined && v !== '') p.set(k, String(v));
    const q = p.toString();
    return `#/runs/${encodeURIComponent(id)}${q ? `?${q}` : ''}`;
  }

  function saveUrl() {
    const next = url();
    if (location.hash !== next) history.replaceState(null, '', next);
  }

  function header() {
    const r = view;
    const actions = [];
    if (!finished(r.status)) {
      actions.push(confirming
        ? h('span', { class: 'confirm', role: 'alertdialog', 'aria-label': 'confirm cancel' }, 'Cancel this run? ',
          h('button', { type: 'button', class: 'danger', 'data-confirm': 'yes', onclick: () => { confirming = false; cancel(); header(); } }, 'Yes, cancel it'),
          h('button', { type: 'button', onclick: () => { confirming = false; header(); } }, 'No'))
        : h('button', { type: 'button', class: 'danger', onclick: () => { confirming = true; header(); head.querySelector('[data-confirm]').focus(); } }, 'Cancel'));
    } else if (r.status !== 'succeeded') {
      actions.push(h('button', { type: 'button', onclick: () => retry(null) }, 'Retry failed'));
    }
    const tab = (name, text) => h('button', {
      type: 'button', 'aria-pressed': String(mode === name), class: 'tab',
      onclick: () => { mode = name; sessionStorage.setItem('weft.run.mode', mode); saveUrl(); draw(); header(); },
    }, text);
    clear(head).append(
      h('h1', {}, r.workflow, ' ', h('small', {}, r.id)), badge(r.status),
      h('span', { class: 'muted' }, `${time(r.created_at)} · `, clock(r.created_at, r.finished_at),
        `${r.submitted_by ? ` · by ${r.submitted_by}` : ''}${r.priority ? ` · priority ${r.priority}` : ''}`),
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

  /** The first failed task, named, with its log's last lines; a click opens it. */
  async function failureBanner() {
    const f = view.failed;
    if (!f) { clear(banner); return; }
    const key = `${f.task}#${f.attempt}`;
    const open = () => { chosen.filter = 'all'; chooseStep(f.step, f.task); };
    const draw = () => clear(banner).append(h('div', { class: 'failed-banner', role: 'status' },
      h('strong', {}, finished(view.status) ? 'Failed at ' : 'A task failed: '),
      h('button', { type: 'button', class: 'link failed-task', onclick: open }, f.task),
      f.item != null ? h('span', { class: 'muted' }, ` (item ${f.item})`) : '',
      f.attempt > 1 ? ` after ${f.attempt} attempts` : '',
      f.error ? `: ${f.error}` : '',
      tailLines && tailLines.length ? h('pre', { class: 'failed-tail' }, tailLines.join('\n')) : ''));
    draw();
    if (tailFor === key || !f.attempt) return;
    tailFor = key;
    try {
      const text = await api(`/api/runs/${encodeURIComponent(id)}/logs/${taskPath(f.task)}?attempt=${f.attempt}&tail=${TAIL_BYTES}`, { signal: abort.signal });
      const lines = String(text).split('\n');
      if (String(text).length >= TAIL_BYTES) lines.shift();
      // Its last stderr lines when it has any: they say why.
      const said = lines.filter((l) => plain(l).trim());
      const errs = said.filter(isStderr);
      tailLines = (errs.length ? errs : said).map(plain).slice(-TAIL_LINES);
      draw();
    } catch (e) { /* the banner stands without the tail */ }
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

  /** Opens `step` (or a group's id) and, if given, one of its tasks. */
  function chooseStep(step, task = null) {
    const group = groups.find((g) => g.id === step) || null;
    Object.assign(chosen, { step: group ? null : step, group, task, attempt: null, showAll: false, outputs: { all: false } });
    if (!task) chosen.filter = 'all';
    line = null;
    stepView = null;
    if (graph) graph.select(graph.nodeOf(step) || step);
    if (mode === 'timeline') draw();
    saveUrl();
    if (group) showGroup();
    else loadStep();
  }

  /** A group's steps, each with its state; choosing one opens it. */
  function showGroup() {
    const group = chosen.group;
    if (!group) return;
    const status = new Map(view.steps.map((step) => [step.id, step.status]));
    const statuses = group.members.map((m) => status.get(m) || 'pending');
    const shown = chosen.showAll ? group.members : group.members.slice(0, 200);
    clear(info).append(
      h('h2', {}, `${group.members.length} steps`, ' ', badge(groupStatus(statuses))),
      h('p', { class: 'muted' }, 'Steps with the same needs and the same dependents, drawn as one node.'),
      h('ul', { class: 'tasks' }, shown.map((m, i) => h('li', {},
        h('button', { type: 'button', class: 'link', onclick: () => chooseStep(m) }, m), ' ', badge(statuses[i])))),
      group.members.length > shown.length
        ? h('button', { type: 'button', onclick: () => { chosen.showAll = true; showGroup(); } }, `Show all ${group.members.length}`) : '');
    // No log for a group: stop following the last step's.
    if (logAbort) logAbort.abort();
    logFor = null;
    logArea.hidden = true;
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
      canvas.append(timeline(view, chooseStep, chosen.step, find.value));
    } else if (graph) {
      canvas.append(graph.element);
      graph.update(nodeStates(view, groups));
    }
  }

  /** Finds steps by name in the graph (or the timeline); Enter opens the first. */
  function found(open) {
    const q = find.value;
    if (mode === 'timeline') draw();
    const ids = graph ? graph.find(q) : [];
    foundSaid.textContent = q.trim() ? `${ids.length} found` : '';
    if (ids.length && graph) graph.reveal(ids[0]);
    if (open && ids.length) chooseStep(ids[0]);
  }

  const act = {
    retry,
    reload: () => loadStep(),
    filterTasks: (f) => { chosen.filter = f; chosen.showAll = false; saveUrl(); details(); },
    chooseTask: (t) => { chosen.task = t; chosen.attempt = null; line = null; saveUrl(); details(); },
    chooseAttempt: (t, n) => { chosen.task = t; chosen.attempt = n; line = null; saveUrl(); details(); },
    showAllTasks: () => { chosen.showAll = true; details(); },
  };

  function details() {
    const step = stepView;
    if (!step || step.id !== chosen.step) return;
    if (!chosen.task && step.tasks.length) {
      // A fan-out opens on a failed task if it has one.
      const failed = step.tasks.find((t) => t.status === 'failed');
      chosen.task = (failed || step.tasks[0]).id;
    }
    const { parts, task, attempt } = stepDetails(id, view, step, chosen, act);
    clear(info).append(...parts);
    if (!panel.contains(info)) clear(panel).append(info);
    follow(task, attempt);
  }

  function follow(task, attempt) {
    const key = task && attempt ? `${task.id}#${attempt}` : null;
    if (key === logFor) return;
    logFor = key;
    if (logAbort) logAbort.abort();
    viewer.reset();
    clear(logHead);
    logArea.hidden = !key;
    if (!key) return;
    logHead.append(h('h3', {}, `Log of ${task.id}, attempt ${attempt}`));
    // Failed and running logs open at their end, where the news is.
    const atEnd = ['failed', 'running', 'retry-waiting'].includes(task.status) || !finished(view.status);
    if (lineToShow) { viewer.goTo(lineToShow); lineToShow = null; } else viewer.startAt(atEnd);
    logAbort = new AbortController();
    const path = `/api/runs/${encodeURIComponent(id)}/logs/${taskPath(task.id)}/stream?attempt=${attempt}`;
    const signal = AbortSignal.any([abort.signal, logAbort.signal]);
    let connected = false;
    stream(path, (name, data) => {
      if (name === 'log') { viewer.append(data); return true; }
      if (name === 'end') { viewer.end(); logHead.append(h('span', { class: 'muted' }, ' (ended)')); return false; }
      return true;
    }, signal, (on) => {
      // A reconnect reads the log again from its start.
      if (on && connected) viewer.reset();
      if (on) connected = true;
    });
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
      failureBanner();
      if (mode === 'timeline') draw();
      else if (graph) graph.update(nodeStates(view, groups));
      if (ready && chosen.step) loadStep();
      if (ready && chosen.group) showGroup();
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
    // Nothing asked for: a failed run opens on its first failed task.
    if (!chosen.step && view.failed) {
      chosen.step = view.failed.step;
      chosen.task = view.failed.task;
    }
    try {
      const drawn = await layout;
      groups = drawn.nodes.filter((n) => n.members && n.members.length);
      graph = drawGraph(drawn, (step) => chooseStep(step));
      draw();
      if (drawn.width > canvas.clientWidth || drawn.height > window.innerHeight) graph.fit();
      // What the URL chose: a group's id opens the group.
      const groupAsked = groups.find((g) => g.id === chosen.step);
      if (groupAsked) { chosen.group = groupAsked; chosen.step = null; }
      const node = graph.nodeOf(chosen.group ? chosen.group.id : chosen.step);
      if (node) { graph.select(node); graph.reveal(node); }
      performance.mark('weft:graph-drawn');
    } catch (e) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(e));
    }
    ready = true;
    saveUrl();
    if (chosen.group) showGroup();
    else if (chosen.step) loadStep();
    if (finished(view.status)) return;
    const tick = throttle(refresh, 250);
    stream(`/api/events?run=${encodeURIComponent(id)}`, () => { tick(); return true; }, abort.signal,
      (on) => { window.dispatchEvent(new CustomEvent('weft:live', { detail: on })); if (on) tick(); });
  })();
  return () => { abort.abort(); if (logAbort) logAbort.abort(); };
}
