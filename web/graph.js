// Draws a laid-out step graph (GET /api/runs/{id}/graph, POST /api/check)
// as SVG. The server computed every coordinate; this only draws, and on
// updates touches just the nodes whose state changed.

import { h, s } from './dom.js';

const PAD = 16;
const MAX_LABEL = 22;
const SHORT = { succeeded: '✓', failed: '✗', running: '▶', queued: '…', 'retry-waiting': '↻', cancelled: '⊘' };

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
  const nodes = s('g', { class: 'nodes' });
  const byId = new Map();
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
  };
  const zoom = (f) => {
    scale = f === 0 ? 1 : Math.min(4, Math.max(0.1, scale * f));
    resize();
  };
  const fit = () => {
    const box = wrap.clientWidth || width;
    scale = Math.min(1, Math.max(0.1, (box - 4) / width));
    resize();
  };
  const wrap = h('div', { class: 'graph-wrap' }, svg);
  const element = h('div', { class: 'graph-box' },
    h('div', { class: 'zoom' },
      h('button', { type: 'button', title: 'zoom in', onclick: () => zoom(1.25) }, '+'),
      h('button', { type: 'button', title: 'zoom out', onclick: () => zoom(0.8) }, '−'),
      h('button', { type: 'button', title: 'fit', onclick: fit }, 'fit'),
      h('button', { type: 'button', title: 'actual size', onclick: () => zoom(0) }, '1:1')),
    wrap);

  let selected = null;
  return {
    element,
    fit,
    /** nodes: [{id, status, fan_out, counts}] — only changed ones are redrawn. */
    update(list) {
      for (const n of list) {
        const entry = byId.get(n.id);
        if (!entry) continue;
        const text = countsText(n);
        const key = `${n.status}|${text}`;
        if (key === entry.key) continue;
        entry.key = key;
        entry.g.setAttribute('class', `node st-${n.status}${n.fan_out ? ' fan' : ''}${entry.node.members ? ' group' : ''}${selected === n.id ? ' selected' : ''}`);
        entry.g.setAttribute('aria-label', `${n.id}: ${n.status}`);
        entry.status.textContent = text;
      }
    },
    select(id) {
      if (selected && byId.has(selected)) byId.get(selected).g.classList.remove('selected');
      selected = id;
      if (id && byId.has(id)) byId.get(id).g.classList.add('selected');
    },
  };
}
