// Exact money: minor units as strings or BigInt, exponents from
// GET /api/v1/currencies (ISO 4217). Never a float.

const INT = /^-?[0-9]+$/;
const DEC = /^([0-9]+)(?:\.([0-9]+))?$/;

// "12345", 2 -> "123.45"; "-5", 2 -> "-0.05"; "7", 0 -> "7".
// minor: a string of digits (optional '-'), a BigInt or a safe integer.
export function formatMinor(minor, exp) {
  let s = typeof minor === 'bigint' ? minor.toString() : String(minor);
  if (!INT.test(s)) throw new Error(`not an integer amount: ${s}`);
  if (!Number.isInteger(exp) || exp < 0 || exp > 18) throw new Error(`bad exponent ${exp}`);
  let neg = s.startsWith('-');
  if (neg) s = s.slice(1);
  s = s.replace(/^0+(?=[0-9])/, '');
  if (s === '0') neg = false;
  if (exp > 0) {
    s = s.padStart(exp + 1, '0');
    s = `${s.slice(0, s.length - exp)}.${s.slice(s.length - exp)}`;
  }
  return (neg ? '-' : '') + s;
}

// "12.5", 2 -> 1250n. Throws (with a message for the user) on anything
// that is not a plain non-negative decimal, or has more decimals than the
// currency has: "12.345" in USD is refused, never rounded.
export function parseDecimal(text, exp, currency = '') {
  const t = String(text).trim();
  const m = DEC.exec(t);
  if (!m) throw new Error(`"${t}" is not a decimal amount (digits, optionally one '.' and decimals)`);
  const frac = m[2] ?? '';
  if (frac.length > exp) {
    throw new Error(`${currency || 'this currency'} has ${exp} decimal${exp === 1 ? '' : 's'}: "${t}" would need rounding`);
  }
  return BigInt(m[1] + frac.padEnd(exp, '0'));
}

// The exponent of a currency from the /api/v1/currencies map; throws when
// it is unknown.
export function exponentOf(currencies, code) {
  const e = currencies?.[code];
  if (!Number.isInteger(e)) throw new Error(`unknown currency ${code}`);
  return e;
}

// {"USD": "1250", "JPY": "7"} -> "12.50 USD, 7 JPY" (currencies in code
// order; an unknown currency is shown in minor units with a note).
export function formatAmounts(amounts, currencies) {
  if (!amounts || typeof amounts !== 'object') return '—';
  const codes = Object.keys(amounts).sort();
  if (codes.length === 0) return '0';
  return codes
    .map((c) => {
      const e = currencies?.[c];
      return Number.isInteger(e) ? `${formatMinor(amounts[c], e)} ${c}` : `${amounts[c]} ${c} (minor units)`;
    })
    .join(', ');
}
