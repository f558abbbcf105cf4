/**
 * Test fixtures: label layers written as text grids. Not a test file (node
 * --test runs it too and finds no tests).
 *
 * `grid(".  .  1 \n 2  2 .")` -> a 2x3 layer; tokens are whitespace separated,
 * "." is background (0), anything else an integer id.
 */

import { createLayer } from "../editor/labels.js";

/**
 * @param {string} text Rows on separate lines; blank lines ignored.
 * @returns {{width: number, height: number, data: Int32Array}}
 */
export function grid(text) {
  const rows = text.split("\n").map((r) => r.trim()).filter((r) => r.length > 0)
    .map((r) => r.split(/\s+/).map((t) => (t === "." ? 0 : Number.parseInt(t, 10))));
  const width = rows[0].length;
  for (const r of rows) if (r.length !== width) throw new Error(`ragged grid row: ${r.join(" ")}`);
  return createLayer(width, rows.length, Int32Array.from(rows.flat()));
}

/**
 * Rows of a layer as strings in the grid notation (for readable diffs).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @returns {string[]}
 */
export function rows(layer) {
  const out = [];
  for (let y = 0; y < layer.height; y++) {
    const ids = Array.from(layer.data.subarray(y * layer.width, (y + 1) * layer.width));
    out.push(ids.map((v) => (v === 0 ? "." : String(v))).join(" "));
  }
  return out;
}

/**
 * Small deterministic PRNG (mulberry32) for randomised property checks.
 *
 * @param {number} seed
 * @returns {() => number} Uniform floats in [0, 1).
 */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Copy of a layer (independent data).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 */
export function cloneLayer(layer) {
  return createLayer(layer.width, layer.height, layer.data.slice());
}
