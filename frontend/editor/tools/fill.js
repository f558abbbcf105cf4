/**
 * Flood fill: the 4-connected region of the clicked pixel's id becomes a
 * label. Clicking background fills the enclosed background; clicking a label
 * relabels the clicked connected piece of it (with a new id from
 * `newLabelId`, that splits a cut cell in two).
 *
 * @module editor/tools/fill
 */

import { checkLabelId, isInside } from "../labels.js";
import { ChangeLog } from "./change_log.js";

/**
 * Fill the 4-connected region of pixels sharing the clicked pixel's id.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number} y Clicked row, pixels (integer).
 * @param {number} x Clicked column, pixels (integer).
 * @param {{label: number, feature?: number}} options `label` (>= 1) is the id
 *   written; `feature` the layer index recorded in the entry.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   The history entry (tight bbox of the filled region), or null when the
 *   click is off the layer or the region already holds `label`.
 * @throws {RangeError} When `label` is not a positive integer id.
 */
export function floodFill(layer, y, x, options) {
  const { label, feature = 0 } = options;
  checkLabelId(label, "fill label");
  if (!isInside(layer, y, x)) return null;
  const { width, height, data } = layer;
  const target = data[y * width + x];
  if (target === label) return null;
  const log = new ChangeLog(layer, feature);
  // Scanline fill: each stack item is a seed pixel; fill its whole run in the
  // row, then seed the rows above and below once per run of target pixels.
  let stack = new Int32Array(64);
  let top = 0;
  stack[top++] = y * width + x;
  while (top > 0) {
    const seed = stack[--top];
    if (data[seed] !== target) continue;
    const sy = (seed / width) | 0;
    const row = sy * width;
    let xa = seed - row;
    let xb = xa;
    while (xa > 0 && data[row + xa - 1] === target) xa--;
    while (xb < width - 1 && data[row + xb + 1] === target) xb++;
    for (let cx = xa; cx <= xb; cx++) log.set(row + cx, sy, cx, label);
    for (const ny of [sy - 1, sy + 1]) {
      if (ny < 0 || ny >= height) continue;
      const nrow = ny * width;
      let inRun = false;
      for (let cx = xa; cx <= xb; cx++) {
        const isTarget = data[nrow + cx] === target;
        if (isTarget && !inRun) {
          if (top === stack.length) {
            const grown = new Int32Array(stack.length * 2);
            grown.set(stack);
            stack = grown;
          }
          stack[top++] = nrow + cx;
        }
        inRun = isTarget;
      }
    }
  }
  return log.toEntry();
}
