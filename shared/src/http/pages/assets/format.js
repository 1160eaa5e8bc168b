// Formatting of the API's numbers. Money is shown as the exact decimal the API sent:
// the API sums integer nano-dollars and writes at most 9 decimals (at most 15
// significant digits), which a JavaScript number carries exactly back to the same
// shortest text. Sums on the page (a price preview) are done in BigInt, never in floats.

/** The decimal text of a number the API sent, never in exponent notation. */
export function decimalText(n) {
  if (typeof n === 'string') return n;
  const plain = String(n);
  if (!/e/i.test(plain)) return plain;
  return n.toFixed(12).replace(/\.?0+$/, '');
}

function group(intPart) {
  return intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** "$1,234.5678": the exact value, its whole part grouped. `null` is "unknown". */
export function usd(n) {
  if (n === null || n === undefined) return 'unknown';
  const text = decimalText(n);
  const neg = text.startsWith('-');
  const [whole, frac] = (neg ? text.slice(1) : text).split('.');
  return `${neg ? '-' : ''}$${group(whole)}${frac ? `.${frac}` : ''}`;
}

const SCALE = 12;

/** Exact decimal text -> BigInt at 1e-12. */
export function toFixedBig(n) {
  const text = decimalText(n);
  const neg = text.startsWith('-');
  const [whole, frac = ''] = (neg ? text.slice(1) : text).split('.');
  const digits = BigInt(whole + frac.padEnd(SCALE, '0').slice(0, SCALE));
  return neg ? -digits : digits;
}

/** BigInt at 1e-12 -> exact decimal text. */
export function fromFixedBig(v) {
  const neg = v < 0n;
  const digits = (neg ? -v : v).toString().padStart(SCALE + 1, '0');
  const whole = digits.slice(0, -SCALE);
  const frac = digits.slice(-SCALE).replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

/** The exact sum of decimal numbers, as text. */
export function addExact(...values) {
  return fromFixedBig(values.reduce((acc, v) => acc + toFixedBig(v), 0n));
}

export function int(n) {
  if (n === null || n === undefined) return '–';
  return group(String(Math.trunc(n)));
}

/** A rate in [0, 1] as a percentage with at most one decimal. */
export function pct(r) {
  if (r === null || r === undefined) return '–';
  return `${(Math.round(r * 1000) / 10).toFixed(1).replace(/\.0$/, '')}%`;
}

export function ms(n) {
  if (n === null || n === undefined) return '–';
  return `${Math.round(n * 100) / 100} ms`;
}

/** YYYY-MM-DD of a Date in UTC. */
export function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

export function when(ts) {
  return ts ? ts.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '–';
}
