// Workers: pools, resource slots, GPUs, what each runs, and its last
// heartbeat; refreshed every two seconds.

import { api } from '../api.js';
import { h, clear, bytes, ago, errorBox } from '../dom.js';

export function mount(el) {
  const abort = new AbortController();
  const body = h('div');
  const problem = h('div');
  el.append(h('div', { class: 'bar' }, h('h1', {}, 'Workers')), problem, body);

  function gpus(list) {
    if (!list || !list.length) return 'none';
    return h('ul', { class: 'gpus' }, list.map((g) => h('li', { class: g.busy ? 'busy' : 'free', ...(g.uuid ? { title: g.uuid } : {}) },
      `#${g.index} ${g.name}`, g['memory-bytes'] ? ` · ${bytes(g['memory-bytes'])}` : '', g.busy ? ' · busy' : ' · free')));
  }

  async function load() {
    try {
      const workers = await api('/api/workers', { signal: abort.signal });
      clear(problem);
      clear(body);
      if (!workers.length) {
        body.append(h('p', { class: 'empty' }, 'No live workers. Start one with `weft worker`.'));
        return;
      }
      body.append(h('table', { class: 'workers' },
        h('thead', {}, h('tr', {}, ['Worker', 'Host', 'Pools', 'CPUs', 'Memory', 'GPUs', 'Running', 'Heartbeat'].map((t) => h('th', {}, t)))),
        h('tbody', {}, workers.map((w) => h('tr', { 'data-worker': w.name },
          h('td', {}, w.name), h('td', {}, `${w.host} (pid ${w.pid})`), h('td', {}, w.pools.join(', ')),
          h('td', {}, `${w.slots.cpus} · ${w.slots.concurrency} at once`), h('td', {}, bytes(w.slots.memory_bytes)),
          h('td', {}, gpus(w.slots.gpus)),
          h('td', {}, w.running.length ? h('ul', {}, w.running.map((r) => h('li', {}, h('a', { href: `#/runs/${encodeURIComponent(r.split('/')[0])}` }, r)))) : 'idle'),
          h('td', { title: new Date(w.seen_at).toLocaleString() }, ago(w.seen_at)))))));
    } catch (err) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(err));
    }
  }

  load();
  const timer = setInterval(load, 2000);
  return () => { clearInterval(timer); abort.abort(); };
}
