// Editor: write or paste a workflow (highlighted, keys completed from the
// format's schema), see its problems at line and column as you type (and
// their lines marked) and a preview of its graph, then run it with
// parameters.

import { api } from '../api.js';
import { h, clear, throttle, errorBox } from '../dom.js';
import { drawGraph } from '../graph.js';
import { codeEditor } from '../code-editor.js';

const DRAFT = 'weft.editor.draft';
const SAMPLE = `[workflow]
name = "hello"

[params]
who = "world"

[steps.greet]
run = "echo 'hello, {{ params.who }}'"

[steps.shout]
needs = ["greet"]
run = "echo 'HELLO!'"

[steps.done]
needs = ["greet", "shout"]
run = "echo done"
`;

/** Byte-free offset of 1-based line and column in `text`. */
function offsetOf(text, line, column) {
  let at = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf('\n', at);
    if (next < 0) return text.length;
    at = next + 1;
  }
  return Math.min(text.length, at + Math.max(0, column - 1));
}

export function mount(el) {
  const abort = new AbortController();
  const source = h('textarea', {
    class: 'source', spellcheck: 'false', autocapitalize: 'off', 'aria-label': 'workflow',
    oninput: () => { localStorage.setItem(DRAFT, source.value); check(); },
  });
  source.value = localStorage.getItem(DRAFT) || SAMPLE;
  // Highlighted, with completion from the format's schema once it comes.
  const code = codeEditor(source, api('/api/schema', { signal: abort.signal }));
  const file = h('input', { type: 'text', value: 'workflow.toml', 'aria-label': 'file name', size: 18 });
  const params = h('textarea', { class: 'params', rows: 3, spellcheck: 'false', placeholder: 'name=value, one per line', 'aria-label': 'parameters' });
  const submit = h('button', { type: 'button', class: 'primary', disabled: true, onclick: run }, 'Run');
  const save = h('button', { type: 'button', disabled: true, onclick: saveWorkflow }, 'Save');
  const state = h('span', { class: 'check-state', role: 'status' }, 'checking…');
  const problems = h('ol', { class: 'diagnostics' });
  const rendered = h('pre', { class: 'rendered', hidden: true });
  const preview = h('div', { class: 'preview' });
  const problem = h('div');
  let generation = 0;

  el.append(
    h('div', { class: 'bar' }, h('h1', {}, 'Editor'), h('span', { class: 'spacer' }), file, state, save, submit),
    problem,
    h('div', { class: 'editor' },
      h('div', { class: 'editor-left' }, code.element, h('label', {}, 'Parameters', params)),
      h('div', { class: 'editor-right' }, problems, rendered, h('h3', {}, 'Preview'), preview)),
  );

  async function doCheck() {
    const mine = ++generation;
    try {
      const result = await api('/api/check', { method: 'POST', json: { workflow: source.value, file: file.value }, signal: abort.signal });
      if (mine !== generation) return;
      clear(problems);
      submit.disabled = !result.ok;
      save.disabled = !result.ok;
      state.textContent = result.ok ? 'no problems' : `${result.diagnostics.length} problem(s)`;
      state.className = `check-state ${result.ok ? 'ok' : 'bad'}`;
      for (const d of result.diagnostics) {
        problems.append(h('li', {},
          h('button', {
            type: 'button', class: 'link',
            onclick: () => {
              const at = offsetOf(source.value, d.line, d.column);
              source.focus();
              source.setSelectionRange(at, at);
            },
          }, d.line ? `${d.line}:${d.column}` : '—'),
          ' ', d.message));
      }
      code.mark(result.diagnostics.map((d) => d.line).filter(Boolean));
      rendered.hidden = result.ok;
      rendered.textContent = result.rendered;
      if (result.graph) {
        const drawn = drawGraph(result.graph);
        clear(preview).append(drawn.element);
        drawn.fit();
        preview.classList.remove('stale');
      } else {
        preview.classList.add('stale');
      }
      clear(problem);
    } catch (e) {
      if (!abort.signal.aborted) clear(problem).append(errorBox(e));
    }
  }
  const check = throttle(doCheck, 250);

  function paramMap() {
    const map = {};
    for (const line of params.value.split('\n')) {
      const t = line.trim();
      if (!t) continue;
      const eq = t.indexOf('=');
      if (eq < 1) throw new Error(`parameter "${t}" is not name=value`);
      map[t.slice(0, eq).trim()] = t.slice(eq + 1);
    }
    return map;
  }

  async function run() {
    try {
      submit.disabled = true;
      const r = await api('/api/runs', { method: 'POST', json: { workflow: source.value, file: file.value, params: paramMap() } });
      location.hash = `#/runs/${encodeURIComponent(r.id)}`;
    } catch (e) {
      submit.disabled = false;
      clear(problem).append(errorBox(e));
    }
  }

  async function saveWorkflow() {
    try {
      const w = await api('/api/workflows', { method: 'POST', json: { workflow: source.value } });
      clear(problem).append(h('div', { class: 'notice', role: 'status' }, `Saved ${w.name} version ${w.version}.`));
    } catch (e) {
      clear(problem).append(errorBox(e));
    }
  }

  check();
  return () => abort.abort();
}
