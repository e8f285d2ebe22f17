// Overview: everything live comes from GET /api/v1/events (Server-Sent
// Events, one `tick` a second); nothing here polls.
import uPlot from './vendor/uPlot.esm.js';
import {api, currencies} from './api.js';
import {$, status} from './dom.js';
import {formatAmounts} from './money.js';

const MAX_POINTS = 180; // three minutes of 1 s windows
let cur = {};
let charts = null;
let lastControl = null;
// Views of kpay-control arrive two ways: in the event stream's ticks and
// in the answer to a command. Either may be the older one, so the page
// never goes back: a view of an older version than the one shown is
// dropped, and a command's answer does not replace a tick of its version
// (or later) that arrived after the command was sent (the answer was
// computed when the command was written, before the instances applied it:
// PAUSED, where the tick may already say DRAINED).
let controlTicks = 0;

function makeChart(node, series, opts = {}) {
  const width = Math.max(300, node.clientWidth || 500);
  const u = new uPlot(
    {
      width,
      height: 220,
      series: [{}, ...series],
      scales: {x: {time: true}, y: {range: (_u, min, max) => [0, Math.max(1, max * 1.1)]}},
      axes: [{}, {size: 60, ...opts.yAxis}],
      legend: {live: true},
    },
    [[], ...series.map(() => [])],
    node,
  );
  new ResizeObserver(() => {
    const w = node.clientWidth;
    if (w > 0 && w !== u.width) u.setSize({width: w, height: 220});
  }).observe(node);
  return u;
}

function initCharts() {
  const tp = $('#chart-throughput');
  const lat = $('#chart-latency');
  charts = {
    tp: {node: tp, x: [], ys: [[]], u: makeChart(tp, [{label: 'outcomes/s', stroke: '#2457c5', fill: 'rgba(36,87,197,.1)'}])},
    lat: {
      node: lat,
      x: [],
      ys: [[], []],
      u: makeChart(lat, [
        {label: 'p50 ms', stroke: '#17803d'},
        {label: 'p99 ms', stroke: '#c62828'},
      ]),
    },
  };
}

function push(chart, t, values, gap) {
  // Seconds without a window had no outcomes: 0 throughput, no latency.
  const last = chart.x[chart.x.length - 1];
  if (last !== undefined && t - last > 1 && t - last <= MAX_POINTS) {
    for (let s = last + 1; s < t; s++) {
      chart.x.push(s);
      chart.ys.forEach((y) => y.push(gap));
    }
  }
  const n = chart.x.length;
  if (n > 0 && chart.x[n - 1] === t) {
    values.forEach((v, i) => (chart.ys[i][n - 1] = v)); // an amended window
  } else if (n > 0 && t < chart.x[n - 1]) {
    return; // older than what is shown (a reconnect replaying)
  } else {
    chart.x.push(t);
    values.forEach((v, i) => chart.ys[i].push(v));
    while (chart.x.length > MAX_POINTS) {
      chart.x.shift();
      chart.ys.forEach((y) => y.shift());
    }
  }
  chart.u.setData([chart.x, ...chart.ys]);
  // For a reader (and the browser test): what the chart shows.
  chart.node.dataset.points = String(chart.x.length);
  chart.node.dataset.lastStart = String(t * 1000);
  chart.node.dataset.lastValues = JSON.stringify(values);
}

function onWindow(w) {
  if (!w || typeof w.start_ms !== 'number') return;
  const t = w.start_ms / 1000;
  const outcomes = (w.complete?.count ?? 0) + (w.rejected?.count ?? 0);
  push(charts.tp, t, [outcomes], 0);
  const e2e = w.latency_ms?.e2e;
  const has = e2e && e2e.count > 0;
  push(charts.lat, t, [has ? e2e.p50 : null, has ? e2e.p99 : null], null);
}

function totals(prefix, t) {
  $(`#${prefix}-count`).textContent = t?.all ? String(t.all.count) : '—';
  $(`#${prefix}-amounts`).textContent = t?.all ? formatAmounts(t.all.amounts, cur) : '—';
  $(`#${prefix}-today`).textContent = t?.today ? `today: ${t.today.count} · ${formatAmounts(t.today.amounts, cur)}` : '';
}

function onSla(sla) {
  const v = sla?.periods?.['1m'];
  const node = $('#sla-verdict');
  if (!v) {
    node.textContent = '—';
    node.className = 'big';
    $('#sla-detail').textContent = sla === null ? 'kpay-metrics not reachable' : 'no verdict yet';
    return;
  }
  node.textContent = v.ok ? 'OK' : 'FAILING';
  node.className = `big ${v.ok ? 'ok' : 'bad'}`;
  // Rates and latencies are measurements (not money): rounded for show.
  const num = (x, d) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '—');
  const parts = [
    `p99 ${num(v.p99_ms, 0)} ms${v.latency_ok ? '' : ' ✗'}`,
    `${num(v.throughput, 1)}/s${v.throughput_ok ? '' : ' ✗'}`,
    `rejected ${num((v.rejection_rate ?? 0) * 100, 2)} %${v.rejection_ok ? '' : ' ✗'}`,
    `burn ${num(v.burn_rate, 2)}`,
    `${v.outcomes ?? 0} outcomes`,
  ];
  $('#sla-detail').textContent = parts.join(' · ');
}

const versionOf = (c) => (c && typeof c.version === 'number' ? c.version : -1);

function onControl(c) {
  if (c && lastControl && versionOf(c) < versionOf(lastControl)) return;
  lastControl = c;
  const node = $('#control-state');
  if (!c) {
    node.textContent = 'unknown';
    node.className = 'big';
    $('#control-detail').textContent = 'kpay-control not reachable';
    return;
  }
  node.textContent = c.state ?? '—';
  node.className = `big state-${c.state}`;
  const parts = [`version ${c.version ?? 0}`];
  parts.push(c.rate_limit === null || c.rate_limit === undefined ? 'no rate limit' : `limit ${c.rate_limit}/s`);
  if (c.instance_count !== undefined) parts.push(`${c.applied_count ?? 0}/${c.instance_count} applied`);
  if (c.inflight) parts.push(`${c.inflight.count} in flight`);
  if (c.last_change) parts.push(`last: ${c.last_change.command} by ${c.last_change.actor}`);
  $('#control-detail').textContent = parts.join(' · ');
}

function onTick(tick) {
  const p = tick.pipeline ?? {};
  $('#inflight-count').textContent = p.inflight ? String(p.inflight.count) : '—';
  $('#inflight-amounts').textContent = p.inflight ? formatAmounts(p.inflight.amounts, cur) : '—';
  totals('confirmed', p.confirmed);
  totals('rejected', p.rejected);
  onSla(p.sla);
  const c = tick.control !== undefined ? tick.control : p.control;
  if (c) controlTicks++;
  onControl(c);
  onWindow(tick.window);
  const missing = (p.missing ?? []).map((m) => `${m.service} ${m.partitions?.length ? `partitions ${m.partitions.join(',')}` : ''}`);
  status($('#overview-partial'), p.partial ? `partial answer, missing: ${missing.join('; ') || 'some instances'}` : '', p.partial ? 'error' : '');
  document.body.dataset.lastTick = String(tick.ts ?? Date.now());
}

function connect() {
  const live = $('#live');
  const es = new EventSource('/api/v1/events');
  es.addEventListener('open', () => {
    live.textContent = 'live';
    live.className = 'badge on';
  });
  es.addEventListener('tick', (ev) => {
    try {
      onTick(JSON.parse(ev.data));
    } catch (e) {
      status($('#overview-partial'), `bad event: ${e.message}`, 'error');
    }
  });
  es.addEventListener('error', () => {
    live.textContent = 'reconnecting…';
    live.className = 'badge off';
  });
}

async function control(method, path, body, what) {
  const st = $('#control-status');
  status(st, `${what}…`);
  const ticksBefore = controlTicks;
  try {
    const r = await api(method, path, {body});
    if (!(controlTicks !== ticksBefore && versionOf(lastControl) >= versionOf(r.body))) onControl(r.body);
    status(st, `${what}: done`, 'ok');
  } catch (e) {
    status(st, `${what} failed: ${e.status === 401 ? 'a token is required (the field at the top)' : e.message}`, 'error');
  }
}

export function init() {
  initCharts();
  currencies().then((c) => (cur = c)).catch(() => {});
  $('#btn-pause').addEventListener('click', () => control('POST', '/api/v1/control/pause', {reason: 'paused from the UI'}, 'Pause'));
  $('#btn-resume').addEventListener('click', () => control('POST', '/api/v1/control/resume', undefined, 'Resume'));
  $('#rate-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('#rate-input').value.trim();
    if (!/^[1-9][0-9]*$/.test(v)) {
      status($('#control-status'), 'a rate limit is a whole number of payments per second', 'error');
      return;
    }
    control('PUT', '/api/v1/control/rate-limit', {payments_per_second: Number(v)}, `Rate limit ${v}/s`);
  });
  $('#btn-rate-off').addEventListener('click', () => control('PUT', '/api/v1/control/rate-limit', {payments_per_second: null}, 'No rate limit'));
  connect();
}

export function show() {
  if (lastControl) onControl(lastControl);
}
