// The browser test (label browser): Debian's chromium, headless, driven by
// playwright-core, against kpay-web and the real suite that test_browser.c
// started (kpay-gen sends a low fixed rate meanwhile). Screenshots go to
// KPAY_SHOT_DIR.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {formatAmounts} from '../../web-tier/ui/assets/money.js';
import {BASE, TOKEN, env, log, requireNm, run, waitFor} from './lib.mjs';

const {chromium} = requireNm('playwright-core');
const SHOTS = env('KPAY_SHOT_DIR');
fs.mkdirSync(SHOTS, {recursive: true});
const errors = [];
let browser, page;

async function shot(name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({path: file, fullPage: true});
  log(`screenshot ${file}`);
}

async function api(p) {
  const r = await fetch(BASE + p, {headers: {Accept: 'application/json'}});
  assert.equal(r.status, 200, `GET ${p}: ${r.status}`);
  return r.json();
}

const text = (sel) => page.locator(sel).first().textContent();

async function chartRead(sel) {
  return page.evaluate((s) => {
    const n = document.querySelector(s);
    const c = n.querySelector('canvas');
    return {
      points: Number(n.dataset.points ?? 0),
      lastStart: Number(n.dataset.lastStart ?? 0),
      lastValues: JSON.parse(n.dataset.lastValues ?? '[]'),
      pixels: c ? c.toDataURL() : '',
    };
  }, sel);
}

async function pauseResume() {
  await page.click('a[data-view=overview]');
  await waitFor('RUNNING', async () => (await text('#control-state')) === 'RUNNING', 20000);
  // Every state the page shows, in order.
  await page.evaluate(() => {
    window.kpaySeen = [];
    const n = document.getElementById('control-state');
    new MutationObserver(() => {
      const s = n.textContent;
      if (window.kpaySeen[window.kpaySeen.length - 1] !== s) window.kpaySeen.push(s);
    }).observe(n, {childList: true, characterData: true, subtree: true});
  });
  await page.click('#btn-pause');
  await waitFor('DRAINED', async () => (await text('#control-state')) === 'DRAINED', 60000, 200);
  // The command's answer (PAUSED, computed when the command was written)
  // may arrive after a tick that already says DRAINED: it must not take
  // the page back.
  await waitFor('Pause: done', async () => /Pause: done/.test(await text('#control-status')), 30000, 100);
  const seen = await page.evaluate(() => window.kpaySeen);
  // A tick may repaint RUNNING before the click; PAUSED may be over
  // before the page hears of it. Nothing else, and never back.
  assert.ok(/^(RUNNING,)?(PAUSED,)?DRAINED$/.test(seen.join(',')), `states seen: ${seen}`);
  const c = await api('/api/v1/control');
  assert.equal(c.state, 'DRAINED');
  // Drained, the totals stand still: the page shows exactly the API's
  // (the next tick at the latest), amounts formatted per currency.
  const cur = (await api('/api/v1/currencies')).currencies;
  const shown = await waitFor('the page\'s totals to equal the API\'s', async () => {
    const p = await api('/api/v1/pipeline');
    const want = {count: String(p.confirmed.all.count), amounts: formatAmounts(p.confirmed.all.amounts, cur),
      rejected: String(p.rejected.all.count), inflight: String(p.inflight.count)};
    const got = {count: await text('#confirmed-count'), amounts: await text('#confirmed-amounts'),
      rejected: await text('#rejected-count'), inflight: await text('#inflight-count')};
    return JSON.stringify(got) === JSON.stringify(want) ? got : null;
  }, 20000, 500);
  assert.equal(shown.inflight, '0');
  assert.ok(Number(shown.count) > 0);
  await shot('drained');
  await page.click('#btn-resume');
  await waitFor('RUNNING', async () => (await text('#control-state')) === 'RUNNING', 30000, 200);
  // The rate limit: set, shown, removed.
  await page.fill('#rate-input', '250');
  await page.click('#rate-form button[type=submit]');
  await waitFor('the limit shown', async () => /limit 250\/s/.test(await text('#control-detail')), 15000);
  assert.equal((await api('/api/v1/control')).rate_limit, 250);
  await page.click('#btn-rate-off');
  await waitFor('no limit shown', async () => /no rate limit/.test(await text('#control-detail')), 15000);
}

const account = `ui-${Date.now().toString(36)}`;
let paymentId;

const failed = await run('ui', [
  ['chromium starts', async () => {
    browser = await chromium.launch({
      executablePath: env('KPAY_CHROMIUM', '/usr/bin/chromium'),
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    });
    const ctx = await browser.newContext({viewport: {width: 1280, height: 900}});
    page = await ctx.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location()?.url ?? ''})`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      // The event stream is cut when a page is left, and a fetch still in
      // flight when the test navigates away (to /docs, say) is aborted by
      // the browser (net::ERR_ABORTED): neither is an error of the UI. Any
      // other failure (refused, reset, timed out) is.
      const why = r.failure()?.errorText ?? '';
      if (!r.url().endsWith('/api/v1/events') && why !== 'net::ERR_ABORTED') errors.push(`request failed: ${r.url()} ${why}`);
    });
    // Nothing but kpay-web: a request elsewhere (a CDN) fails the test.
    await ctx.route(/.*/, (route) => {
      if (route.request().url().startsWith(BASE)) return route.continue();
      errors.push(`request outside kpay-web: ${route.request().url()}`);
      return route.abort();
    });
  }],

  ['the UI loads and the event stream is live', async () => {
    const r = await page.goto(`${BASE}/`);
    assert.equal(r.status(), 200);
    assert.equal(await page.title(), 'kpay');
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    await waitFor('the live badge', async () => (await text('#live')) === 'live', 15000);
    await waitFor('pipeline figures', async () => /^[0-9]+$/.test(await text('#confirmed-count')), 20000);
    await waitFor('a control state', async () => /^(RUNNING|PAUSED|DRAINED)$/.test(await text('#control-state')), 20000);
  }],

  ['the charts show data that changes between two reads', async () => {
    const first = await waitFor('windows with outcomes in the throughput chart', async () => {
      const c = await chartRead('#chart-throughput');
      return c.points >= 2 && c.lastValues[0] > 0 ? c : null;
    }, 120000, 500);
    const second = await waitFor('a newer window', async () => {
      const c = await chartRead('#chart-throughput');
      return c.lastStart > first.lastStart ? c : null;
    }, 30000, 500);
    assert.ok(second.points >= first.points, 'points were lost');
    assert.notEqual(second.pixels, first.pixels, 'the throughput canvas did not change');
    const lat = await waitFor('latency points', async () => {
      const c = await chartRead('#chart-latency');
      return c.points >= 2 && c.lastValues[1] !== null ? c : null;
    }, 30000, 500);
    assert.ok(lat.lastValues[1] >= lat.lastValues[0], `p99 ${lat.lastValues[1]} below p50 ${lat.lastValues[0]}`);
    await shot('overview');
  }],

  ['submit a payment in the form and see its outcome', async () => {
    await page.click('a[data-view=payments]');
    await page.waitForSelector('#pay-form select[name=currency] option[value=USD]', {state: 'attached'});
    // A refused amount: more decimals than USD has, shown before any call.
    await page.fill('#pay-form input[name=from]', 'acc-1');
    await page.fill('#pay-form input[name=to]', account);
    await page.selectOption('#pay-form select[name=currency]', 'USD');
    await page.fill('#pay-form input[name=amount]', '12.345');
    assert.match(await text('#pay-preview'), /2 decimals/);
    await page.fill('#pay-form input[name=amount]', '12.34');
    assert.match(await text('#pay-preview'), /= 1234 minor units/);
    await page.click('#pay-form button[type=submit]');
    const st = await waitFor('the outcome', async () => {
      const s = await text('#pay-status');
      return /: (COMPLETE|CONFIRMED|REJECTED)/.test(s) ? s : null;
    }, 45000, 300);
    assert.match(st, /: (COMPLETE|CONFIRMED)/, `the payment was not completed: ${st}`);
    paymentId = await page.inputValue('#lookup-form input[name=id]');
    const p = await api(`/api/v1/payments/${encodeURIComponent(paymentId)}`);
    assert.equal(String(p.amount), '1234');
    assert.equal(p.currency, 'USD');
    assert.equal(p.from, 'acc-1');
    assert.equal(p.to, account);
    assert.match(await text('#payment-detail'), /12\.34 USD/);
    assert.ok(await page.locator('#payment-detail .timeline li').count() >= 2, 'no timeline');
    await shot('payments');
  }],

  ['search an account and see its balance match the API', async () => {
    await page.click('a[data-view=accounts]');
    const want = await waitFor('the credit on the new account', async () => {
      const r = await fetch(`${BASE}/api/v1/accounts/${account}`);
      if (r.status !== 200) return null;
      const a = await r.json();
      return a.balances?.USD === '1234' ? a : null;
    }, 30000, 300);
    await page.fill('#acct-prefix', account);
    await page.click('#acct-form button[type=submit]');
    const cell = page.locator(`#acct-table tr[data-account="${account}"] [data-currency=USD]`);
    await cell.waitFor({timeout: 15000});
    assert.equal(await cell.getAttribute('data-minor'), want.balances.USD);
    assert.equal((await cell.textContent()).trim(), '12.34 USD');
    // And a page of the generator's accounts matches the list API too.
    await page.fill('#acct-prefix', 'acc-');
    await page.selectOption('#acct-limit', '20');
    await page.click('#acct-form button[type=submit]');
    await page.locator('#acct-table tr[data-account="acc-0"]').waitFor({timeout: 15000});
    // Typing the prefix may already have shown a page of the old limit:
    // wait for the page of 20, not for the first acc- row.
    await waitFor('a page of 20 acc- accounts', async () =>
      (await page.locator('#acct-table tbody tr').count()) === 20, 15000);
    assert.equal(await page.isEnabled('#acct-next'), true, 'no next page of acc- accounts');
    await page.click('#acct-next');
    await waitFor('page 2', async () => /^page 2/.test(await text('#acct-page')), 10000);
    const l = await api('/api/v1/accounts?prefix=acc-&limit=20');
    const firstOfPage2 = await page.locator('#acct-table tbody tr').first().getAttribute('data-account');
    assert.ok(firstOfPage2 > l.items[l.items.length - 1].id, `page 2 starts at ${firstOfPage2}`);
    await page.fill('#acct-prefix', account);
    await page.click('#acct-form button[type=submit]');
    await cell.waitFor({timeout: 15000});
    await shot('accounts');
  }],

  ['Pause shows PAUSED then DRAINED, Resume shows RUNNING', () => pauseResume().finally(async () => {
    // Whatever happened, the suite runs again for the steps after this.
    await fetch(`${BASE}/api/v1/control/resume`, {method: 'POST', headers: {Authorization: `Bearer ${TOKEN}`}}).catch(() => {});
  })],
  ['instances: services x partitions', async () => {
    await page.click('a[data-view=instances]');
    await page.locator('#inst-table tbody tr').first().waitFor({timeout: 15000});
    const api1 = await api('/api/v1/instances');
    const services = new Set(api1.items.map((i) => i.service));
    for (const s of ['inflight', 'account', 'confirmed', 'metrics']) assert.ok([...services].some((x) => x.includes(s)), `no ${s} instance in ${[...services]}`);
    assert.ok(await page.locator('#inst-grid tbody tr').count() >= 4);
    await shot('instances');
  }],

  ['dead letters', async () => {
    await page.click('a[data-view=dlq]');
    await waitFor('dead letters from the generator\'s broken records', async () => {
      await page.click('#dlq-refresh');
      await page.waitForFunction(() => !/loading/.test(document.getElementById('dlq-status').textContent));
      return (await page.locator('#dlq-table tbody tr').count()) > 0;
    }, 30000, 1000);
    const row = await page.locator('#dlq-table tbody tr').first().textContent();
    assert.match(row, /kpay\.payments\.incoming|incoming/);
    await shot('dlq');
  }],

  ['/docs: Swagger UI runs a GET through "Try it out"', async () => {
    await page.goto(`${BASE}/docs`);
    const op = page.locator('.opblock-get').filter({hasText: '/api/v1/currencies'}).first();
    await op.waitFor({timeout: 90000});
    log('/docs: Swagger UI rendered the document');
    await op.locator('.opblock-summary').click();
    await op.locator('button.try-out__btn').click();
    await op.locator('button.execute').click();
    const resp = op.locator('.live-responses-table tr.response .response-col_status').first();
    await resp.waitFor({timeout: 30000});
    assert.equal((await resp.textContent()).trim(), '200');
    assert.match(await op.locator('.live-responses-table tr.response .response-col_description').first().textContent(), /USD/);
    await shot('docs');
  }],

  ['no console errors', async () => {
    assert.deepEqual(errors, []);
  }],
]);

if (browser) await browser.close();
process.exit(failed ? 1 : 0);
