// Draws a laid-out step graph (GET /api/runs/{id}/graph, POST /api/check)
// as SVG. The server computed every coordinate; this only draws, and on
// updates touches just the nodes whose state changed. Big graphs: fit in
// both directions, find steps by name, a chosen step's upstream and
// downstream lit and the rest dimmed, and a minimap when wider than the view.

import { h, s } from './dom.js';

const PAD = 16;
const MAX_LABEL = 22;
const SHORT = { succeeded: '✓', failed: '✗', running: '▶', queued: '…', 'retry-waiting': '↻', cancelled: '⊘' };

let drawn = 0;

function label(id) {
  return id.length > MAX_LABEL ? `${id.slice(0, MAX_LABEL - 1)}…` : id;
}

function countsText(node) {
  const total = Object.values(node.counts || {}).reduce((a, b) => a + b, 0);
  if (!node.fan_out) return node.status;
  if (!total) return `${node.status} · fan-out`;
  const parts = Object.entries(node.counts).map(([k, n]) => `${n}${SHORT[k] || ` ${k}`}`);
  return `${parts.join(' ')} of ${total}`;
}

/**
 * One word for a group of steps, as the server says it (views.rs,
 * group_status): their status if shared; running while any runs; then
 * failed, cancelled; running while some are done and others wait.
 */
export function groupStatus(statuses) {
  if (statuses.every((s) => s === statuses[0])) return statuses[0] || 'pending';
  const any = (...wanted) => statuses.some((s) => wanted.includes(s));
  if (any('running')) return 'running';
  if (any('failed')) return 'failed';
  if (any('cancelled')) return 'cancelled';
  if (any('pending', 'waiting')) return 'running';
  return 'succeeded';
}

function curve(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x1, y1] = points[i - 1];
    const [x2, y2] = points[i];
    const dx = (x2 - x1) / 2;
    d += ` C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
  }
  return d;
}

/**
 * Returns {element, update(nodes), select(id)}; onSelect(id) runs on click
 * or Enter on a node.
 */
export function drawGraph(graph, onSelect = () => {}) {
  const width = graph.width + 2 * PAD;
  const height = graph.height + 2 * PAD;
  let scale = 1;
  const svg = s('svg', {
    // Big graphs skip the running pulse: animating many nodes costs frames.
    class: graph.nodes.length > 200 ? 'graph big' : 'graph', viewBox: `${-PAD} ${-PAD} ${width} ${height}`,
    width, height, role: 'img', 'aria-label': 'step graph',
  });
  const edges = s('g', { class: 'edges' });
  for (const e of graph.edges) {
    edges.append(s('path', { d: curve(e.points), 'data-from': e.from, 'data-to': e.to }));
  }
  const nodes = s('g', { class: 'nodes', id: `nodes-${++drawn}` });
  const byId = new Map();
  // Edges by end, for walking upstream and downstream.
  const ins = new Map();
  const outs = new Map();
  const edgeEls = new Map();
  for (const path of edges.children) {
    const [from, to] = [path.dataset.from, path.dataset.to];
    if (!outs.has(from)) outs.set(from, []);
    if (!ins.has(to)) ins.set(to, []);
    outs.get(from).push(to);
    ins.get(to).push(from);
    edgeEls.set(`${from}\u0000${to}`, path);
  }
  for (const n of graph.nodes) {
    const status = s('text', { x: 10, y: 32, class: 'sub' }, countsText(n));
    const g = s('g', {
      class: `node st-${n.status}${n.fan_out ? ' fan' : ''}${n.members ? ' group' : ''}`, transform: `translate(${n.x},${n.y})`,
      tabindex: 0, role: 'button', 'data-step': n.id, 'aria-label': `${n.id}: ${n.status}`,
      onclick: () => onSelect(n.id),
      onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); onSelect(n.id); } },
    },
    s('title', {}, n.members ? `${n.members.length} steps with the same needs and dependents: ${n.name}`
      : n.name ? `${n.name} (${n.id})` : n.id),
    s('rect', { width: graph.node_width, height: graph.node_height, rx: 6 }),
    s('text', { x: 10, y: 16, class: 'name' }, label(n.name || n.id)),
    status);
    byId.set(n.id, { g, status, node: n, key: `${n.status}|${countsText(n)}` });
    nodes.append(g);
  }
  svg.append(edges, nodes);

  const resize = () => {
    svg.setAttribute('width', width * scale);
    svg.setAttribute('height', height * scale);
    // Text too small to read is not drawn: on a big graph it is most of the paint.
    svg.classList.toggle('tiny', scale < 0.5);
    requestAnimationFrame(lensAt);
  };

  /** Every node reached from `id` by following `next` (ins or outs). */
  const walk = (id, next) => {
    const seen = new Set();
    const todo = [id];
    while (todo.length) {
      for (const n of next.get(todo.pop()) || []) if (!seen.has(n)) { seen.add(n); todo.push(n); }
    }
    return seen;
  };
  let lit = [];
  /** Lights `id`, its upstream and its downstream; dims the rest. */
  const light = (id) => {
    for (const el of lit) el.classList.remove('up', 'down', 'lit');
    lit = [];
    svg.classList.toggle('focused', !!id && byId.has(id));
    if (!id || !byId.has(id)) return;
    const up = walk(id, ins);
    const down = walk(id, outs);
    const mark = (el, cls) => { el.classList.add(cls); lit.push(el); };
    mark(byId.get(id).g, 'lit');
    for (const n of up) if (byId.has(n)) mark(byId.get(n).g, 'up');
    for (const n of down) if (byId.has(n)) mark(byId.get(n).g, 'down');
    for (const [key, path] of edgeEls) {
      const [from, to] = key.split('\u0000');
      if ((up.has(from) || from === id) && (up.has(to) || to === id)) mark(path, 'up');
      else if ((down.has(to) || to === id) && (down.has(from) || from === id)) mark(path, 'down');
    }
  };
  let found = [];
  /** Marks the steps whose id or name holds `q`; returns their ids. */
  const find = (q) => {
    for (const g of found) g.classList.remove('found');
    found = [];
    const needle = q.trim().toLowerCase();
    svg.classList.toggle('searching', !!needle);
    if (!needle) return [];
    const ids = [];
    for (const [id, entry] of byId) {
      const name = (entry.node.name || '').toLowerCase();
      const members = entry.node.members || [];
      if (id.toLowerCase().includes(needle) || name.includes(needle)
        || members.some((m) => m.toLowerCase().includes(needle))) {
        entry.g.classList.add('found');
        found.push(entry.g);
        ids.push(id);
      }
    }
    return ids;
  };
  /** Scrolls node `id` into the middle of the view. */
  const reveal = (id) => {
    const entry = byId.get(id);
    if (!entry) return;
    wrap.scrollLeft = (entry.node.x + PAD + graph.node_width / 2) * scale - wrap.clientWidth / 2;
    wrap.scrollTop = (entry.node.y + PAD + graph.node_height / 2) * scale - wrap.clientHeight / 2;
  };
  const zoom = (f) => {
    scale = f === 0 ? 1 : Math.min(4, Math.max(0.05, scale * f));
    resize();
  };
  // The whole graph in view: as wide and as high as the box allows.
  const fit = () => {
    const boxW = (wrap.clientWidth || width) - 20;
    const boxH = Math.max(200, window.innerHeight - wrap.getBoundingClientRect().top - 40);
    scale = Math.min(1, Math.max(0.05, Math.min(boxW / width, boxH / height)));
    resize();
  };
  const wrap = h('div', { class: 'graph-wrap' }, svg);
  // The minimap: the same nodes, drawn again by reference, with the view's box.
  const lens = s('rect', { class: 'lens' });
  const mini = s('svg', { class: 'minimap', viewBox: `${-PAD} ${-PAD} ${width} ${height}`, 'aria-hidden': 'true',
    onclick: (e) => {
      const box = mini.getBoundingClientRect();
      const fx = (e.clientX - box.left) / box.width;
      const fy = (e.clientY - box.top) / box.height;
      wrap.scrollLeft = fx * svg.clientWidth - wrap.clientWidth / 2;
      wrap.scrollTop = fy * svg.clientHeight - wrap.clientHeight / 2;
    } },
  s('use', { href: `#${nodes.id}` }), lens);
  const lensAt = () => {
    const w = svg.clientWidth || 1;
    const hh = svg.clientHeight || 1;
    const show = w > wrap.clientWidth + 4 || hh > wrap.clientHeight + 4;
    mini.classList.toggle('on', show);
    if (!show) return;
    lens.setAttribute('x', (wrap.scrollLeft / w) * width - PAD);
    lens.setAttribute('y', (wrap.scrollTop / hh) * height - PAD);
    lens.setAttribute('width', Math.min(1, wrap.clientWidth / w) * width);
    lens.setAttribute('height', Math.min(1, wrap.clientHeight / hh) * height);
  };
  wrap.addEventListener('scroll', () => requestAnimationFrame(lensAt));
  // Zoomed out, names are too small to draw: the node under the pointer
  // (or the keyboard's focus) says its name in a label of page size.
  const tip = h('div', { class: 'node-tip', role: 'tooltip', hidden: true });
  const showTip = (e) => {
    const g = e.target.closest && e.target.closest('g.node');
    if (!g || scale >= 0.5) { tip.hidden = true; return; }
    const entry = byId.get(g.dataset.step);
    if (!entry) return;
    tip.textContent = `${entry.node.name || entry.node.id} · ${g.getAttribute('aria-label').split(': ').pop()}`;
    const r = g.getBoundingClientRect();
    const box = element.getBoundingClientRect();
    tip.style.left = `${r.left - box.left}px`;
    tip.style.top = `${r.bottom - box.top + 4}px`;
    tip.hidden = false;
  };
  svg.addEventListener('pointerover', showTip);
  svg.addEventListener('focusin', showTip);
  svg.addEventListener('pointerleave', () => { tip.hidden = true; });
  svg.addEventListener('focusout', () => { tip.hidden = true; });
  const element = h('div', { class: 'graph-box' },
    h('div', { class: 'zoom' },
      h('button', { type: 'button', title: 'zoom in', onclick: () => zoom(1.25) }, '+'),
      h('button', { type: 'button', title: 'zoom out', onclick: () => zoom(0.8) }, '−'),
      h('button', { type: 'button', title: 'fit', onclick: fit }, 'fit'),
      h('button', { type: 'button', title: 'actual size', onclick: () => zoom(0) }, '1:1')),
    wrap, mini, tip);

  let selected = null;
  return {
    element,
    fit,
    find,
    reveal,
    /** Which node holds step `id` (itself, or its group). */
    nodeOf: (id) => (byId.has(id) ? id : [...byId.values()].find((e) => (e.node.members || []).includes(id))?.node.id),
    /** nodes: [{id, status, fan_out, counts}] — only changed ones are redrawn. */
    update(list) {
      for (const n of list) {
        const entry = byId.get(n.id);
        if (!entry) continue;
        const text = countsText(n);
        const key = `${n.status}|${text}`;
        if (key === entry.key) continue;
        entry.key = key;
        const keep = ['found', 'up', 'down', 'lit'].filter((c) => entry.g.classList.contains(c));
        entry.g.setAttribute('class', `node st-${n.status}${n.fan_out ? ' fan' : ''}${entry.node.members ? ' group' : ''}${selected === n.id ? ' selected' : ''}`);
        for (const c of keep) entry.g.classList.add(c);
        entry.g.setAttribute('aria-label', `${n.id}: ${n.status}`);
        entry.status.textContent = text;
      }
    },
    select(id) {
      if (selected && byId.has(selected)) byId.get(selected).g.classList.remove('selected');
      selected = id;
      if (id && byId.has(id)) byId.get(id).g.classList.add('selected');
      light(id);
    },
  };
}
