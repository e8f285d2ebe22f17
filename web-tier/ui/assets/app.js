// kpay's UI: one page, plain JS modules, no build step. Each view is a
// module with init() (once) and show() (whenever its tab is opened).
import * as overview from './overview.js';
import * as payments from './payments.js';
import * as accounts from './accounts.js';
import * as instances from './instances.js';
import * as dlq from './dlq.js';
import {getToken, setToken} from './api.js';

const views = {overview, payments, accounts, instances, dlq};
const started = new Set();

function route() {
  const name = (location.hash || '#overview').slice(1);
  const view = views[name] ? name : 'overview';
  for (const n of Object.keys(views)) {
    document.getElementById(`view-${n}`).hidden = n !== view;
  }
  for (const a of document.querySelectorAll('#tabs a[data-view]')) {
    a.classList.toggle('active', a.dataset.view === view);
  }
  if (!started.has(view)) {
    started.add(view);
    views[view].init();
  }
  views[view].show?.();
}

const tok = document.getElementById('token');
tok.value = getToken();
tok.addEventListener('change', () => setToken(tok.value.trim()));

window.addEventListener('hashchange', route);
// The live stream feeds the overview, which is started whatever tab is
// open first, so that its charts have history when it is opened.
started.add('overview');
overview.init();
route();
