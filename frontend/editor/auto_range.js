/**
 * Automatic display range of one uint8 channel as the browser holds it (the
 * server maps each image's raw channel to 0..255 from the whole image's
 * range, so a crop in a dim corner of an image can come out dark; "Auto"
 * stretches what this crop holds). The rule is the server's
 * (backend/core/imaging.py `display_range`): percentiles over non-trivial
 * values, the floor and the saturated ceiling left out, and a thin bright
 * tail (hot pixels) cut at the highest dense value.
 *
 * @module editor/auto_range
 */

/** A value held by this fraction of the pixels (and 10 at least) is image content, not a stray pixel. */
const DENSE_FRACTION = 1 / 10000;

/**
 * Display range of one channel.
 *
 * @param {Uint8Array} values The channel's pixels (any length).
 * @param {{low?: number, high?: number}} [percentiles] In 0..100, low < high.
 * @returns {number[]} `[lo, hi]`, integers with 0 <= lo < hi <= 255 (`[0, 255]` for no pixels).
 * @throws {RangeError} On bad percentiles.
 */
export function autoRange(values, { low = 0.5, high = 99.8 } = {}) {
  if (!(low >= 0 && low < high && high <= 100)) throw new RangeError(`percentiles need 0 <= low < high <= 100, got ${low}, ${high}`);
  if (values.length === 0) return [0, 255];
  const counts = new Float64Array(256);
  for (let i = 0; i < values.length; i++) counts[values[i]]++;
  let min = 0, max = 255;
  while (min < 255 && counts[min] === 0) min++;
  while (max > 0 && counts[max] === 0) max--;
  if (max <= min) return min >= 255 ? [254, 255] : [min, min + 1];
  let from = min + 1, to = max - 1; // leave out the floor and the ceiling
  let n = 0;
  for (let v = from; v <= to; v++) n += counts[v];
  if (n < 2) { from = min; to = max; n = values.length; }
  const lo = percentileOf(counts, from, to, n, low);
  let dense = to;
  while (dense >= from && counts[dense] < Math.max(10, DENSE_FRACTION * n)) dense--;
  if (dense < from) dense = to; // no value is dense: nothing to cut
  let below = 0;
  for (let v = from; v <= dense; v++) below += counts[v];
  const top = below < (n * high) / 100 ? dense : to; // the thin tail is more than the percentile leaves out
  const hi = percentileOf(counts, from, top, top === to ? n : below, high);
  return hi > lo ? [lo, hi] : lo >= 255 ? [254, 255] : [lo, lo + 1];
}

/** Smallest value v in from..to with at least q % of the n counted pixels at or below it. */
function percentileOf(counts, from, to, n, q) {
  const need = (q / 100) * n;
  let seen = 0;
  for (let v = from; v <= to; v++) {
    seen += counts[v];
    if (seen >= need && seen > 0) return v;
  }
  return to;
}
