// Payments: submit (a decimal amount parsed exactly with the currency's
// ISO 4217 exponent) and look up by id with the timeline.
import {api, currencies, get} from './api.js';
import {$, el, fmtTime, status} from './dom.js';
import {exponentOf, formatMinor, parseDecimal} from './money.js';

let cur = {};
const FINAL = new Set(['COMPLETE', 'REJECTED', 'CONFIRMED']);

function preview() {
  const f = $('#pay-form');
  const out = $('#pay-preview');
  const amount = f.amount.value.trim();
  if (!amount) return (out.textContent = '');
  try {
    const c = f.currency.value;
    const minor = parseDecimal(amount, exponentOf(cur, c), c);
    out.textContent = `= ${minor} minor units (${formatMinor(minor, cur[c])} ${c})`;
    out.className = 'sub';
  } catch (e) {
    out.textContent = e.message;
    out.className = 'sub error';
  }
}

function renderPayment(p) {
  const box = $('#payment-detail');
  box.replaceChildren();
  if (!p) return;
  let amount = String(p.amount);
  try {
    amount = `${formatMinor(p.amount, exponentOf(cur, p.currency))} ${p.currency}`;
  } catch {
    amount = `${p.amount} ${p.currency} (minor units)`;
  }
  const rows = [
    ['Id', p.id],
    ['State', p.state],
    ['From', p.from],
    ['To', p.to],
    ['Amount', amount],
    ['Reason', p.reason || '—'],
  ];
  box.append(
    el('table', {class: 'payment', dataset: {state: p.state ?? '', id: p.id ?? ''}},
      el('tbody', {}, rows.map(([k, v]) =>
        el('tr', {}, el('th', {}, k), el('td', {class: k === 'State' ? `state ${p.state}` : ''}, v ?? '—'))))),
  );
  const tl = Array.isArray(p.timeline) ? p.timeline : [];
  if (tl.length) {
    const t0 = Number(tl[0].ms);
    box.append(el('h2', {}, 'Timeline'), el('ol', {class: 'timeline'},
      tl.map((s) => el('li', {dataset: {stage: s.stage}}, `${s.stage}: ${fmtTime(s.ms)} (+${Number(s.ms) - t0} ms)`))));
  }
}

async function lookup(id) {
  const st = $('#lookup-status');
  status(st, 'looking up…');
  try {
    const p = await get(`/api/v1/payments/${encodeURIComponent(id)}`);
    renderPayment(p);
    status(st, '');
    return p;
  } catch (e) {
    renderPayment(null);
    status(st, e.status === 404 ? `no payment ${id}` : e.message, 'error');
    return null;
  }
}

async function submit(ev) {
  ev.preventDefault();
  const f = ev.target;
  const st = $('#pay-status');
  const c = f.currency.value;
  let amount;
  try {
    const minor = parseDecimal(f.amount.value, exponentOf(cur, c), c);
    if (minor <= 0n) throw new Error('the amount must be above zero');
    amount = formatMinor(minor, cur[c]); // the exact decimal string
  } catch (e) {
    return status(st, e.message, 'error');
  }
  const body = {from: f.from.value.trim(), to: f.to.value.trim(), amount, currency: c};
  // The id (the user's, or a new one) is also the Idempotency-Key: sending
  // the same request again is the same payment, so the form can wait for
  // the outcome by asking again (wait_ms) rather than polling the lookup.
  const idv = f.elements.namedItem('id').value.trim();
  body.id = idv || `ui-${crypto.randomUUID()}`;
  const headers = {'Idempotency-Key': body.id};
  status(st, 'submitting…');
  try {
    for (let i = 0; i < 6; i++) {
      const r = await api('POST', '/api/v1/payments?wait_ms=10000', {body, headers});
      const p = r.body;
      $('#lookup-form').elements.namedItem('id').value = p.id;
      if (r.status === 200 && FINAL.has(p.state)) {
        renderPayment(p);
        return status(st, `payment ${p.id}: ${p.state}${p.reason ? ` (${p.reason})` : ''}`, p.state === 'REJECTED' ? 'error' : 'ok');
      }
      status(st, `payment ${p.id}: ${p.state}, waiting for its outcome…`);
    }
    status(st, `payment ${body.id} submitted; no outcome within a minute (look it up later)`);
  } catch (e) {
    status(st, e.status === 401 ? 'a token is required (the field at the top)' : e.message, 'error');
  }
}

export function init() {
  const f = $('#pay-form');
  currencies()
    .then((c) => {
      cur = c;
      const codes = Object.keys(c).sort();
      f.currency.replaceChildren(...codes.map((k) => el('option', {value: k, selected: k === 'USD'}, `${k} (${c[k]})`)));
      preview();
    })
    .catch((e) => status($('#pay-status'), `currencies: ${e.message}`, 'error'));
  f.amount.addEventListener('input', preview);
  f.currency.addEventListener('change', preview);
  f.addEventListener('submit', submit);
  $('#lookup-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    lookup(ev.target.elements.namedItem('id').value.trim());
  });
}
