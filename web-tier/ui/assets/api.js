// The kpay-web REST API (/api/v1), same origin. Mutations carry the bearer
// token from the token field when one is set.

const TOKEN_KEY = 'kpay.web.token';

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

export function setToken(t) {
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* private mode: the token lives for this page only */
  }
  sessionToken = t;
}

let sessionToken = null;

// JSON with exact amounts: an `amount` (a single payment's minor units, an
// integer in the API) and any integer beyond 2^53 keep their source text,
// so that no amount is ever rounded through a float.
export function parseJson(text) {
  return JSON.parse(text, function (key, value, ctx) {
    if (typeof value === 'number' && ctx && typeof ctx.source === 'string' &&
        (key === 'amount' || !Number.isSafeInteger(value)) && /^-?[0-9]+$/.test(ctx.source)) {
      return ctx.source;
    }
    return value;
  });
}

export class ApiError extends Error {
  constructor(status, body) {
    const code = body?.error ?? `http_${status}`;
    super(body?.message ? `${code}: ${body.message}` : `${code} (HTTP ${status})`);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

// Calls the API; resolves {status, body, headers} for 2xx, rejects with an
// ApiError otherwise.
export async function api(method, path, {body, headers = {}} = {}) {
  const h = {Accept: 'application/json', ...headers};
  if (method !== 'GET') {
    const tok = sessionToken ?? getToken();
    if (tok) h.Authorization = `Bearer ${tok}`;
  }
  let payload;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, {method, headers: h, body: payload, cache: 'no-store'});
  const text = await r.text();
  let json = null;
  try {
    json = text ? parseJson(text) : null;
  } catch {
    json = null;
  }
  if (!r.ok) throw new ApiError(r.status, json);
  return {status: r.status, body: json, headers: r.headers};
}

export const get = (path) => api('GET', path).then((r) => r.body);

// The ISO 4217 exponents, fetched once.
let currenciesP = null;
export function currencies() {
  if (!currenciesP) {
    currenciesP = get('/api/v1/currencies').then((b) => b.currencies ?? {}).catch((e) => {
      currenciesP = null;
      throw e;
    });
  }
  return currenciesP;
}
