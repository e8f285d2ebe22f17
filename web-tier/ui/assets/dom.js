// Small DOM helpers: elements are built with textContent only (never
// innerHTML with data), so nothing from the API is interpreted as markup.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// Shows a message in a view's status line; kind: "ok", "error" or "".
export function status(node, text, kind = '') {
  node.textContent = text;
  node.className = `status ${kind}`;
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined || ms === '' || Number(ms) <= 0) return '—';
  const d = new Date(Number(ms));
  return d.toISOString().replace('T', ' ').replace('Z', ' UTC');
}

export function fmtAge(ms) {
  if (ms === null || ms === undefined) return '—';
  const n = Number(ms);
  if (n < 1000) return `${n} ms`;
  if (n < 120000) return `${(n / 1000).toFixed(1)} s`;
  return `${Math.round(n / 60000)} min`;
}
