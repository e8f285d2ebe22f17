// The UI's exact money (web-tier/ui/assets/money.js): minor units as
// strings and BigInt, never a float. Run by ctest as unit.ui_money.
import assert from 'node:assert/strict';
import test from 'node:test';
import {exponentOf, formatAmounts, formatMinor, parseDecimal} from '../../web-tier/ui/assets/money.js';

test('formatMinor', () => {
  assert.equal(formatMinor('12345', 2), '123.45');
  assert.equal(formatMinor('5', 2), '0.05');
  assert.equal(formatMinor('-5', 2), '-0.05');
  assert.equal(formatMinor('-0', 2), '0.00');
  assert.equal(formatMinor('7', 0), '7');
  assert.equal(formatMinor('1234', 3), '1.234');
  assert.equal(formatMinor(0n, 2), '0.00');
  assert.equal(formatMinor('007', 2), '0.07');
  // Beyond 2^53, exactly: int64's limits.
  assert.equal(formatMinor('9223372036854775807', 2), '92233720368547758.07');
  assert.equal(formatMinor('-9223372036854775808', 3), '-9223372036854775.808');
  assert.throws(() => formatMinor('1.5', 2));
  assert.throws(() => formatMinor('1e3', 2));
  assert.throws(() => formatMinor('', 2));
});

test('parseDecimal refuses rounding and junk', () => {
  assert.equal(parseDecimal('12.5', 2), 1250n);
  assert.equal(parseDecimal('12', 2), 1200n);
  assert.equal(parseDecimal(' 0.001 ', 3), 1n);
  assert.equal(parseDecimal('7', 0), 7n);
  assert.equal(parseDecimal('92233720368547758.07', 2), 9223372036854775807n);
  assert.throws(() => parseDecimal('12.345', 2, 'USD'), /USD has 2 decimals/);
  assert.throws(() => parseDecimal('1.5', 0, 'JPY'), /JPY has 0 decimals/);
  for (const bad of ['', '.5', '5.', '1e3', '-1', '+1', '1,5', '0x10', 'NaN', '1 000']) {
    assert.throws(() => parseDecimal(bad, 2), undefined, bad);
  }
});

test('round trip', () => {
  for (const [s, e] of [['0.01', 2], ['123456789012345678.901', 3], ['5', 0]]) {
    assert.equal(formatMinor(parseDecimal(s, e), e), s);
  }
});

test('formatAmounts per currency, never added', () => {
  const cur = {USD: 2, JPY: 0, BHD: 3};
  assert.equal(formatAmounts({USD: '1250', JPY: '7', BHD: '1'}, cur), '0.001 BHD, 7 JPY, 12.50 USD');
  assert.equal(formatAmounts({XXX: '5'}, cur), '5 XXX (minor units)');
  assert.equal(formatAmounts({}, cur), '0');
  assert.equal(exponentOf(cur, 'JPY'), 0);
  assert.throws(() => exponentOf(cur, 'EUR'));
});
