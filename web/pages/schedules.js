// Schedules: each saved workflow's [[triggers.schedule]] with its cron,
// zone, overlap policy and next fire times (local time and UTC), and a
// link to the runs it started; refreshed every five seconds.

import { api } from '../api.js';
import { h, clear, errorBox } from '../dom.js';

function when(ms) {
  const d = new Date(ms);
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, d.toLocaleString());
}

// 21600 → "6h", 90 → "1m30s".
function span(secs) {
  if (!secs) return 'none';
  const parts = [[86400, 'd'], [3600, 'h'], [60, 'm'], [1, 's']];
  let out = '';
  for (const [size, unit] of parts) {
    if (secs >= size) { out += `${Math.floor(secs / size)}${unit}`; secs %= size; }
  }
  return out;
}

// The runs page keeps its filter in sessionStorage: set it to this workflow.
function runsOf(workflow) {
  sessionStorage.setItem('weft.runs.filter', JSON.stringify({ status: '', workflow }));
}

export function mount(el) {
  const abort = new AbortController();
  const body = h('div');
  const problem = h('div');
  el.append(h('div', { class: 'bar' }, h('h1', {}, 'Schedules')), problem, body);

  async function load() {
    try {
      const schedules = await api('/api/schedules', { signal: abort.signal });
      clear(problem);
      clear(body);
      if (!schedules.length) {
        body.append(h('p', { class: 'empty' },
          'No saved workflow has a schedule. Add [[triggers.schedule]] to one and save it with `weft workflows save FILE`.'));
        return;
      }
      body.append(h('table', { class: 'schedules' },
        h('thead', {}, h('tr', {}, ['Workflow', 'Cron', 'Time zone', 'Overlap', 'Catch-up', 'Next fires'].map((t) => h('th', {}, t)))),
        h('tbody', {}, schedules.map((s) => h('tr', { 'data-schedule': `${s.workflow}#${s.index}` },
          h('td', {}, h('a', { href: '#/runs', title: 'its runs', onclick: () => runsOf(s.workflow) }, s.workflow), ` v${s.version} #${s.index}`),
          h('td', {}, h('code', {}, s.cron)),
          h('td', {}, s.timezone),
          h('td', {}, s.overlap),
          h('td', {}, span(s.catch_up_secs)),
          h('td', {}, h('ol', { class: 'next' }, s.next.slice(0, 3).map((t) => h('li', {}, when(t))))))))));
    } catch (err) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(err));
    }
  }

  load();
  const timer = setInterval(load, 5000);
  return () => { clearInterval(timer); abort.abort(); };
}
