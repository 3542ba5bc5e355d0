// Plugins: upload a component, and see each one's versions, world,
// exports, size and hash.

import { api, request } from '../api.js';
import { h, clear, bytes, time, errorBox } from '../dom.js';

export function mount(el) {
  const abort = new AbortController();
  const fileInput = h('input', { type: 'file', accept: '.wasm,application/wasm', 'aria-label': 'plugin file', required: true });
  const name = h('input', { type: 'text', placeholder: 'name', 'aria-label': 'plugin name', required: true, pattern: '[a-z0-9][a-z0-9-]*' });
  const version = h('input', { type: 'text', placeholder: '0.1.0', 'aria-label': 'plugin version', required: true });
  const problem = h('div');
  const list = h('div', { class: 'plugins' });
  fileInput.addEventListener('change', () => {
    const f = fileInput.files[0];
    if (f && !name.value) name.value = f.name.replace(/\.wasm$/, '').toLowerCase().replace(/[^a-z0-9-]/g, '-');
  });
  const form = h('form', {
    class: 'upload', onsubmit: async (e) => {
      e.preventDefault();
      const f = fileInput.files[0];
      if (!f) return;
      try {
        const q = new URLSearchParams({ name: name.value.trim(), version: version.value.trim() });
        const p = await api(`/api/plugins?${q}`, { method: 'POST', body: await f.arrayBuffer(), contentType: 'application/octet-stream' });
        clear(problem).append(h('div', { class: 'notice', role: 'status' }, `Uploaded ${p.name}@${p.version} (${p.world}).`));
        form.reset();
        load();
      } catch (err) {
        clear(problem).append(errorBox(err));
      }
    },
  }, h('h2', {}, 'Upload'), fileInput, name, version, h('button', { type: 'submit', class: 'primary' }, 'Upload'));

  el.append(h('div', { class: 'bar' }, h('h1', {}, 'Plugins')), form, problem, list);

  async function remove(p) {
    if (!window.confirm(`Delete ${p.name}@${p.version}? Runs that pinned it keep their copy.`)) return;
    try {
      await request(`/api/plugins/${encodeURIComponent(p.name)}/${encodeURIComponent(p.version)}`, { method: 'DELETE' });
      load();
    } catch (err) {
      clear(problem).append(errorBox(err));
    }
  }

  async function load() {
    try {
      const plugins = await api('/api/plugins', { signal: abort.signal });
      const byName = new Map();
      for (const p of plugins) {
        if (!byName.has(p.name)) byName.set(p.name, []);
        byName.get(p.name).push(p);
      }
      clear(list);
      if (!plugins.length) list.append(h('p', { class: 'empty' }, 'No plugins yet. Upload a component built against wit/plugin.wit.'));
      for (const [n, versions] of byName) {
        list.append(h('section', { class: 'plugin', 'data-plugin': n },
          h('h2', {}, n),
          h('table', {},
            h('thead', {}, h('tr', {}, ['Version', 'World', 'Exports', 'Size', 'SHA-256', 'Uploaded', ''].map((t) => h('th', {}, t)))),
            h('tbody', {}, versions.map((p) => h('tr', {},
              h('td', {}, p.version), h('td', {}, p.world),
              h('td', {}, p.exports.join(', ')), h('td', {}, bytes(p.size)),
              h('td', {}, h('code', { title: p.sha256 }, p.sha256.slice(0, 16))),
              h('td', {}, time(p.uploaded_at)),
              h('td', {}, h('button', { type: 'button', class: 'danger', onclick: () => remove(p) }, 'Delete'))))))));
      }
    } catch (err) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(err));
    }
  }

  load();
  return () => abort.abort();
}
