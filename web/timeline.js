// A run as a Gantt chart: one row per step, its wait (ready, no slot or
// worker yet) in a light shade and its run in its state's colour, up to
// its end (or now); steps not started yet are listed last. A search
// narrows the rows to the steps whose id or name holds it.

import { h, duration } from './dom.js';

function tasks(step) {
  return Object.values(step.counts || {}).reduce((a, b) => a + b, 0);
}

export function timeline(view, onSelect, selected, search = '') {
  const t0 = view.created_at;
  const now = Date.now();
  const t1 = Math.max(view.finished_at || now, t0 + 1,
    ...view.steps.map((s) => s.finished_at || (s.started_at ? now : 0)));
  const span = t1 - t0;
  const needle = search.trim().toLowerCase();
  const steps = view.steps
    .filter((s) => !needle || s.id.toLowerCase().includes(needle) || (s.name || '').toLowerCase().includes(needle))
    .sort((a, b) => (a.started_at ?? Infinity) - (b.started_at ?? Infinity));
  const pct = (ms) => `${(ms / span) * 100}%`;
  const rows = steps.map((step) => {
    const ready = step.started_at;
    const ran = step.running_at;
    const end = step.finished_at || (ready ? now : null);
    const waitEnd = ran || end;
    const bars = [];
    if (ready && waitEnd > ready) {
      bars.push(h('div', {
        class: 'bar-fill wait',
        style: { left: pct(ready - t0), width: pct(Math.max(span * 0.002, waitEnd - ready)) },
        title: `${step.id}: waited ${duration(waitEnd - ready)}`,
      }));
    }
    if (ran) {
      bars.push(h('div', {
        class: `bar-fill st-${step.status}`,
        style: { left: pct(ran - t0), width: pct(Math.max(span * 0.003, end - ran)) },
        title: `${step.id}: ${step.status}, ran ${duration(end - ran)}${ready ? ` after waiting ${duration(ran - ready)}` : ''}`,
      }));
    }
    return h('div', {
      class: `gantt-row${selected === step.id ? ' selected' : ''}`, role: 'button', tabindex: 0, 'data-step': step.id,
      onclick: () => onSelect(step.id),
      onkeydown: (e) => { if (e.key === 'Enter') onSelect(step.id); },
    },
    h('span', { class: 'gantt-label', title: step.id }, step.name || step.id, tasks(step) > 1 ? ` ×${tasks(step)}` : ''),
    h('span', { class: 'gantt-track' }, bars),
    h('span', { class: 'gantt-took', title: ready ? `waited ${duration((ran || end) - ready)}` : '' },
      ran ? duration(end - ran) : step.status));
  });
  return h('div', { class: 'gantt', 'aria-label': 'timeline' },
    h('div', { class: 'gantt-row gantt-axis' }, h('span', { class: 'gantt-label' }, 'step'),
      h('span', { class: 'gantt-track' }, h('span', {}, '0'),
        h('span', { class: 'legend' }, h('i', { class: 'swatch wait' }), ' waiting ', h('i', { class: 'swatch run' }), ' running'),
        h('span', { class: 'right' }, duration(span))),
      h('span', { class: 'gantt-took' }, 'ran')),
    rows);
}
