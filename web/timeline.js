// A run as a Gantt chart: one row per step, a bar from its start to its end
// (or now), coloured by state; steps not started yet are listed last.

import { h, duration } from './dom.js';

function tasks(step) {
  return Object.values(step.counts || {}).reduce((a, b) => a + b, 0);
}

export function timeline(view, onSelect, selected) {
  const t0 = view.created_at;
  const now = Date.now();
  const t1 = Math.max(view.finished_at || now, t0 + 1,
    ...view.steps.map((s) => s.finished_at || (s.started_at ? now : 0)));
  const span = t1 - t0;
  const steps = [...view.steps].sort((a, b) => (a.started_at ?? Infinity) - (b.started_at ?? Infinity));
  const rows = steps.map((step) => {
    const start = step.started_at;
    const end = step.finished_at || (start ? now : null);
    const bar = start
      ? h('div', {
        class: `bar-fill st-${step.status}`,
        style: { left: `${((start - t0) / span) * 100}%`, width: `${Math.max(0.3, ((end - start) / span) * 100)}%` },
        title: `${step.id}: ${step.status}, ${duration(end - start)}`,
      })
      : null;
    return h('div', {
      class: `gantt-row${selected === step.id ? ' selected' : ''}`, role: 'button', tabindex: 0, 'data-step': step.id,
      onclick: () => onSelect(step.id),
      onkeydown: (e) => { if (e.key === 'Enter') onSelect(step.id); },
    },
    h('span', { class: 'gantt-label', title: step.id }, step.name || step.id, tasks(step) > 1 ? ` ×${tasks(step)}` : ''),
    h('span', { class: 'gantt-track' }, bar),
    h('span', { class: 'gantt-took' }, start ? duration(end - start) : step.status));
  });
  return h('div', { class: 'gantt', 'aria-label': 'timeline' },
    h('div', { class: 'gantt-row gantt-axis' }, h('span', { class: 'gantt-label' }, 'step'),
      h('span', { class: 'gantt-track' }, h('span', {}, '0'), h('span', { class: 'right' }, duration(span))),
      h('span', { class: 'gantt-took' }, 'took')),
    rows);
}
