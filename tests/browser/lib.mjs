// Shared by the browser and contract tests (tests/browser/*.mjs), which
// test_browser.c runs against a real suite. Environment:
//   KPAY_WEB_URL          http://127.0.0.1:PORT of kpay-web
//   KPAY_WEB_TOKEN        its bearer token
//   KPAY_UI_NODE_MODULES  <build>/ui-npm/node_modules (npm ci of
//                         web-tier/ui/package-lock.json)
//   KPAY_SHOT_DIR         where screenshots go (in the build directory)
//   KPAY_CHROMIUM         the browser (default /usr/bin/chromium)
import {createRequire} from 'node:module';
import http from 'node:http';
import path from 'node:path';

export function env(name, dflt) {
  const v = process.env[name] ?? dflt;
  if (v === undefined) throw new Error(`${name} is not set (test_browser.c sets it)`);
  return v;
}

export const BASE = env('KPAY_WEB_URL');
export const TOKEN = process.env.KPAY_WEB_TOKEN ?? '';

// require() from the build's node_modules: the tests live in the source
// tree, the packages never do.
export const requireNm = createRequire(path.join(env('KPAY_UI_NODE_MODULES'), '..', 'package.json'));

export function log(...a) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
}

// Polls fn() (async) until it returns a truthy value; fails with what()
// after timeoutMs. Never a fixed sleep instead of a condition.
export async function waitFor(what, fn, timeoutMs = 30000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// One raw HTTP request (the path is sent exactly as given: no
// normalisation of "..", no re-encoding). Resolves {status, headers, body}.
export function raw(method, rawPath, {headers = {}, body, timeoutMs = 10000} = {}) {
  const u = new URL(BASE);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {host: u.hostname, port: u.port, method, path: rawPath, headers: {...headers, Connection: 'close'}, timeout: timeoutMs},
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8')}));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${rawPath}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export function json(text, what) {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what}: not JSON: ${String(text).slice(0, 200)}`);
  }
}

let failures = 0;
// Runs the steps in order; each failure is reported and counted; the
// process exits non-zero when any failed. Prints "N passed, N failed".
export async function run(name, steps) {
  let passed = 0;
  for (const [title, fn] of steps) {
    const t0 = Date.now();
    try {
      await fn();
      passed++;
      log(`ok   ${name}: ${title} (${Date.now() - t0} ms)`);
    } catch (e) {
      failures++;
      log(`FAIL ${name}: ${title}: ${e.stack ?? e}`);
    }
  }
  console.log(`${name}: ${passed} passed, ${failures} failed`);
  return failures;
}
