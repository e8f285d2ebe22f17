// Instances: every live instance, and which owns each partition of each
// service.
import {get} from './api.js';
import {$, el, fmtAge, status} from './dom.js';

async function load() {
  const st = $('#inst-status');
  status(st, 'loading…');
  try {
    const r = await get('/api/v1/instances');
    const items = r.items ?? [];
    $('#inst-table tbody').replaceChildren(...items.map((i) =>
      el('tr', {dataset: {service: i.service, instance: i.instance}},
        el('td', {}, i.service), el('td', {class: 'mono'}, i.instance), el('td', {class: 'mono'}, i.endpoint ?? '—'),
        el('td', {}, i.state ?? '—'), el('td', {class: 'mono'}, (i.partitions ?? []).join(', ') || '—'),
        el('td', {class: 'num'}, i.lag ?? '—'), el('td', {}, `${fmtAge(i.age_ms)} ago`))));
    // services x partitions
    const services = [...new Set(items.map((i) => i.service))].sort();
    let maxp = -1;
    for (const i of items) for (const p of i.partitions ?? []) maxp = Math.max(maxp, p);
    const parts = [...Array(maxp + 1).keys()];
    $('#inst-grid thead').replaceChildren(el('tr', {}, el('th', {}, 'service \\ partition'), parts.map((p) => el('th', {}, p))));
    $('#inst-grid tbody').replaceChildren(...services.map((s) => {
      const owner = new Map();
      for (const i of items) if (i.service === s) for (const p of i.partitions ?? []) owner.set(p, i);
      const any = owner.size > 0;
      return el('tr', {}, el('th', {}, s), parts.map((p) => {
        const o = owner.get(p);
        return o ? el('td', {title: `${o.instance} ${o.state ?? ''}`}, o.instance) : el('td', {class: any ? 'none' : ''}, any ? 'none' : '·');
      }));
    }));
    status(st, `${items.length} instances`);
  } catch (e) {
    status(st, e.message, 'error');
  }
}

export function init() {
  $('#inst-refresh').addEventListener('click', load);
}

export function show() {
  load();
}
