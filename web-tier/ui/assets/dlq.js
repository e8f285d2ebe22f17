// Dead letters: newest first, with their error headers and source.
import {get} from './api.js';
import {$, el, fmtTime, status} from './dom.js';

let before = null;

async function load(cursor) {
  const st = $('#dlq-status');
  status(st, 'loading…');
  const q = new URLSearchParams({limit: '50'});
  if (cursor) q.set('before', cursor);
  try {
    const r = await get(`/api/v1/dlq?${q}`);
    const items = r.items ?? [];
    $('#dlq-table tbody').replaceChildren(...items.map((d) =>
      el('tr', {},
        el('td', {}, fmtTime(d.timestamp_ms)), el('td', {class: 'mono'}, `${d.partition}/${d.offset}`),
        el('td', {}, d.service ?? '—'), el('td', {class: 'mono'}, d.error ?? '—'), el('td', {}, d.detail ?? '—'),
        el('td', {class: 'mono'}, d.source ? `${d.source.topic ?? '?'} [${d.source.partition ?? '?'}] @${d.source.offset ?? '?'}` : '—'),
        el('td', {class: 'mono'}, d.key ?? '—'),
        el('td', {class: 'mono', title: `${d.size ?? '?'} bytes`}, d.preview ?? ''))));
    before = r.next ?? null;
    $('#dlq-older').disabled = !before;
    status(st, items.length ? `${items.length} dead letters${cursor ? ' (older)' : ''}` : 'no dead letters');
  } catch (e) {
    status(st, e.message, 'error');
  }
}

export function init() {
  $('#dlq-refresh').addEventListener('click', () => load(null));
  $('#dlq-older').addEventListener('click', () => before && load(before));
}

export function show() {
  load(null);
}
