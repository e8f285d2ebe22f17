// Accounts: search by id prefix, cursor pagination, freeze / unfreeze.
import {api, currencies, get} from './api.js';
import {$, el, fmtTime, status} from './dom.js';
import {formatMinor} from './money.js';

let cur = {};
let cursors = ['']; // the "after" of each page seen; the last is the current
let next = null;

function balances(b) {
  const codes = Object.keys(b ?? {}).sort();
  if (!codes.length) return el('span', {class: 'sub'}, 'none');
  return el('span', {}, codes.map((c) => el('div', {class: 'mono', dataset: {currency: c, minor: String(b[c])}},
    Number.isInteger(cur[c]) ? `${formatMinor(b[c], cur[c])} ${c}` : `${b[c]} ${c} (minor units)`)));
}

async function command(id, what) {
  const st = $('#acct-status');
  try {
    const r = await api('POST', `/api/v1/accounts/${encodeURIComponent(id)}/${what}`);
    status(st, `${r.body?.command ?? what} sent for ${id} (command ${r.body?.id ?? '?'}); it applies once kpay-account processes it`, 'ok');
    setTimeout(() => load(cursors[cursors.length - 1]), 1000);
  } catch (e) {
    status(st, e.status === 401 ? 'a token is required (the field at the top)' : e.message, 'error');
  }
}

async function load(after) {
  const st = $('#acct-status');
  const prefix = $('#acct-prefix').value.trim();
  const limit = $('#acct-limit').value;
  const q = new URLSearchParams({limit});
  if (prefix) q.set('prefix', prefix);
  if (after) q.set('after', after);
  status(st, 'loading…');
  try {
    const r = await get(`/api/v1/accounts?${q}`);
    const tb = $('#acct-table tbody');
    tb.replaceChildren(...(r.items ?? []).map((a) =>
      el('tr', {dataset: {account: a.id}},
        el('td', {class: 'mono'}, a.id),
        el('td', {}, balances(a.balances)),
        el('td', {}, a.frozen ? 'frozen' : 'no'),
        el('td', {}, fmtTime(a.updated_ms)),
        el('td', {class: 'mono'}, a.last_payment ?? '—'),
        el('td', {}, el('button', {type: 'button', onclick: () => command(a.id, a.frozen ? 'unfreeze' : 'freeze')}, a.frozen ? 'Unfreeze' : 'Freeze')))));
    next = r.next ?? null;
    $('#acct-next').disabled = !next;
    $('#acct-prev').disabled = cursors.length <= 1;
    $('#acct-page').textContent = `page ${cursors.length} · ${r.items?.length ?? 0} accounts`;
    const miss = r.missing_partitions ?? [];
    status(st, r.partial ? `partial answer: partitions ${miss.join(', ')} did not answer` : (r.items?.length ? '' : 'no accounts match'), r.partial ? 'error' : '');
  } catch (e) {
    status(st, e.message, 'error');
  }
}

export function init() {
  currencies().then((c) => (cur = c)).catch(() => {});
  $('#acct-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    cursors = [''];
    currencies().then((c) => (cur = c)).catch(() => {}).finally(() => load(''));
  });
  $('#acct-next').addEventListener('click', () => {
    if (!next) return;
    cursors.push(next);
    load(next);
  });
  $('#acct-prev').addEventListener('click', () => {
    if (cursors.length <= 1) return;
    cursors.pop();
    load(cursors[cursors.length - 1]);
  });
}

export function show() {
  if (!$('#acct-table tbody').children.length) currencies().then((c) => (cur = c)).catch(() => {}).finally(() => load(''));
}
