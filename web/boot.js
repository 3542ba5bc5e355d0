// Loaded before the dashboard's modules, as a plain script: if one of
// them cannot be fetched (a dropped connection, a server restarting), the
// browser runs none of them and would leave the page blank. This says so
// instead, with a way to try again.

document.addEventListener('error', (e) => {
  const el = e.target;
  if (!(el instanceof HTMLScriptElement) || el.type !== 'module') return;
  const page = document.getElementById('page');
  if (!page || page.querySelector('.load-failed')) return;
  const box = document.createElement('div');
  box.className = 'error load-failed';
  box.setAttribute('role', 'alert');
  box.textContent = "The dashboard's scripts did not load from the server. ";
  const again = document.createElement('button');
  again.type = 'button';
  again.textContent = 'Reload';
  again.addEventListener('click', () => location.reload());
  box.append(again);
  page.replaceChildren(box);
}, true);
