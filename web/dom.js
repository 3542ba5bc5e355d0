// Building the page without innerHTML: every user string becomes a text
// node, so step names, logs and outputs can never be markup.

const SVG = 'http://www.w3.org/2000/svg';

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = v;
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === 'style') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h('a', {href}, 'text', child...). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** 1.2 s, 3m 04s, 2h 05m. */
export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

/**
 * A span with the time from `from` to `to`; without `to` it ticks every
 * second (a running step's or run's clock).
 */
export function clock(from, to) {
  if (!from) return h('span', { class: 'clock' }, '—');
  if (to) return h('span', { class: 'clock' }, duration(Math.max(0, to - from)));
  return h('span', { class: 'clock', 'data-since': from }, duration(Math.max(0, Date.now() - from)));
}

setInterval(() => {
  for (const el of document.querySelectorAll('.clock[data-since]')) {
    el.textContent = duration(Math.max(0, Date.now() - Number(el.dataset.since)));
  }
}, 1000);

export function ago(ms) {
  if (!ms) return '';
  const d = Date.now() - ms;
  if (d < 5000) return 'just now';
  return `${duration(d).replace(/\.\d s$/, ' s')} ago`;
}

export function time(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

export function bytes(n) {
  if (!n && n !== 0) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function badge(status) {
  return h('span', { class: `badge st-${status}` }, status);
}

/** Calls `fn` at most once per `ms`, the last call always landing. */
export function throttle(fn, ms) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(function tick() {
      if (again) { again = false; fn(); timer = setTimeout(tick, ms); } else timer = null;
    }, ms);
  };
}

export function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, e && e.message ? e.message : String(e));
}
