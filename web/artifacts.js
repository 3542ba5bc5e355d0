// A step's artifacts in the run page's panel: size, digest, a download
// (fetched with the token, never put in a URL) and a preview of the first
// bytes for text, CSV and JSON, or the whole image for PNG and SVG.

import { token } from './api.js';
import { h, bytes } from './dom.js';

/** How much of a text artifact a preview reads. */
const PREVIEW_BYTES = 64 * 1024;
/** The largest image a preview shows. */
const IMAGE_BYTES = 4 * 1024 * 1024;
/** Rows of a CSV shown. */
const CSV_ROWS = 20;

function url(runId, a) {
  return `/api/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(a.step)}/${encodeURIComponent(a.name)}`;
}

async function fetchBytes(runId, a, range) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (range) headers.Range = range;
  const response = await fetch(url(runId, a), { headers });
  if (!response.ok && response.status !== 206) throw new Error(`${response.status} ${response.statusText}`);
  return response;
}

function kind(a) {
  if (a.dir) return null;
  const ext = (a.path.split('.').pop() || '').toLowerCase();
  if (['csv', 'tsv'].includes(ext)) return 'csv';
  if (ext === 'json') return 'json';
  if (ext === 'png') return 'png';
  if (ext === 'svg') return 'svg';
  if (['txt', 'log', 'md', 'out', 'yaml', 'yml', 'toml', 'ini'].includes(ext)) return 'text';
  return null;
}

async function download(runId, a, note) {
  note.textContent = 'downloading…';
  try {
    const blob = await (await fetchBytes(runId, a)).blob();
    const link = h('a', { href: URL.createObjectURL(blob), download: a.dir ? `${a.name}.tar` : a.path.split('/').pop() || a.name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    note.textContent = '';
  } catch (e) {
    note.textContent = `download failed: ${e.message}`;
  }
}

function csvTable(text) {
  const sep = text.includes('\t') && !text.includes(',') ? '\t' : ',';
  const rows = text.split('\n').filter((l) => l.length).slice(0, CSV_ROWS).map((l) => l.split(sep));
  const [head, ...body] = rows;
  return h('table', { class: 'preview-csv' },
    h('thead', {}, h('tr', {}, (head || []).map((c) => h('th', {}, c)))),
    h('tbody', {}, body.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}

async function preview(runId, a, box) {
  const k = kind(a);
  box.replaceChildren(h('p', { class: 'muted' }, 'loading…'));
  try {
    if (k === 'png' || k === 'svg') {
      if (a.size > IMAGE_BYTES) { box.replaceChildren(h('p', { class: 'muted' }, 'too large to preview')); return; }
      const buf = new Uint8Array(await (await fetchBytes(runId, a)).arrayBuffer());
      let bin = '';
      for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode(...buf.subarray(i, i + 0x8000));
      // A data: URL in an <img>: an SVG's scripts never run there.
      const type = k === 'png' ? 'image/png' : 'image/svg+xml';
      box.replaceChildren(h('img', { class: 'preview-image', alt: a.name, src: `data:${type};base64,${btoa(bin)}` }));
      return;
    }
    const response = await fetchBytes(runId, a, a.size ? `bytes=0-${PREVIEW_BYTES - 1}` : null);
    const text = new TextDecoder().decode(await response.arrayBuffer());
    const cut = a.size > PREVIEW_BYTES;
    let shown;
    if (k === 'csv') shown = csvTable(text);
    else if (k === 'json' && !cut) {
      try { shown = h('pre', { class: 'outputs' }, JSON.stringify(JSON.parse(text), null, 2)); } catch { shown = h('pre', { class: 'outputs' }, text); }
    } else shown = h('pre', { class: 'outputs' }, text);
    box.replaceChildren(shown, cut ? h('p', { class: 'muted' }, `first ${bytes(PREVIEW_BYTES)} of ${bytes(a.size)}`) : '');
  } catch (e) {
    box.replaceChildren(h('p', { class: 'error-text' }, `preview failed: ${e.message}`));
  }
}

/** The artifacts section of a step's panel, or null when it left none. */
export function artifactList(runId, artifacts) {
  if (!artifacts || !artifacts.length) return null;
  const box = h('div', { class: 'artifact-preview' });
  const rows = artifacts.map((a) => {
    const note = h('span', { class: 'muted' });
    const k = kind(a);
    return h('tr', { 'data-artifact': a.name },
      h('td', {}, h('code', {}, a.name), a.dir ? ' (directory)' : ''),
      h('td', {}, bytes(a.size)),
      h('td', { title: a.digest }, h('code', {}, a.digest.slice(0, 12))),
      h('td', {},
        h('button', { type: 'button', class: 'link', onclick: () => download(runId, a, note) }, 'Download'),
        k ? [' ', h('button', { type: 'button', class: 'link show-preview', onclick: () => preview(runId, a, box) }, 'Preview')] : null,
        ' ', note));
  });
  return [h('h3', {}, 'Artifacts'),
    h('table', { class: 'artifacts' },
      h('thead', {}, h('tr', {}, ['Name', 'Size', 'SHA-256', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows)),
    box];
}
