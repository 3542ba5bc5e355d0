// Loaded before the dashboard's modules, as a plain script: if one of
// them cannot be fetched (a dropped connection, a server restarting), the
// browser runs none of them and would leave the page blank. The page is
// loaded once more at once (a fetch that failed once mostly works the
// second time); if that fails too, within half a minute, it says so, with
// a way to try again.

const RELOADED = 'weft.boot-reloaded-at';

function reloadedLately() {
  try {
    const at = Number(sessionStorage.getItem(RELOADED)) || 0;
    return Date.now() - at < 30000;
  } catch {
    return true;
  }
}

document.addEventListener('error', (e) => {
  const el = e.target;
  if (!(el instanceof HTMLScriptElement) || el.type !== 'module') return;
  const page = document.getElementById('page');
  if (!page || page.querySelector('.load-failed')) return;
  if (!reloadedLately()) {
    sessionStorage.setItem(RELOADED, String(Date.now()));
    location.reload();
    return;
  }
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
