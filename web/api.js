// The REST API from the browser: bearer token from localStorage, JSON
// errors as exceptions, and Server-Sent Events read through fetch (so the
// token goes in a header, never in a URL).

const TOKEN_KEY = 'weft.token';

export function token() {
  return localStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t.trim());
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message, details) {
    super(message);
    this.status = status;
    this.details = details;
  }
}

function headers(extra) {
  const h = { ...extra };
  if (token()) h.Authorization = `Bearer ${token()}`;
  return h;
}

/** Fetches `path`; returns {body, response}. */
export async function request(path, { method = 'GET', json, body, contentType, signal } = {}) {
  const extra = {};
  if (json !== undefined) { extra['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  else if (contentType) extra['Content-Type'] = contentType;
  const response = await fetch(path, { method, headers: headers(extra), body, signal });
  const type = response.headers.get('content-type') || '';
  const data = type.includes('json') ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent('weft:unauthorized'));
    const message = data && data.error ? data.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, data && data.details);
  }
  return { body: data, response };
}

export async function api(path, options) {
  return (await request(path, options)).body;
}

/**
 * Reads Server-Sent Events from `path`, calling onEvent(name, data) for
 * each, and reconnects after a drop until `signal` aborts.
 */
export async function stream(path, onEvent, signal, onState = () => {}) {
  let delay = 500;
  while (!signal.aborted) {
    try {
      const response = await fetch(path, { headers: headers({ Accept: 'text/event-stream' }), signal });
      if (response.status === 401) window.dispatchEvent(new CustomEvent('weft:unauthorized'));
      if (!response.ok) throw new ApiError(response.status, `${response.status}`);
      onState(true);
      delay = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      let ended = false;
      while (!ended) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let name = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) name = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length && onEvent(name, data.join('\n')) === false) ended = true;
        }
      }
      if (ended) return;
    } catch (e) {
      if (signal.aborted) return;
    }
    onState(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}
