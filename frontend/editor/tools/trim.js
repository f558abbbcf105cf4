/**
 * Trim: keep only the connected piece of a label that holds the click and
 * erase the label's other pieces (stray pixels left by a brush, a fragment
 * across the crop).
 *
 * @module editor/tools/trim
 */

import { extractPatch, isInside, labelBbox, makeEntry, applyPatch } from "../labels.js";

/**
 * Mask of the connected piece of `id` holding one pixel, inside a box.
 *
 * @param {Int32Array} patch Ids over the box, row-major, `bh * bw`.
 * @param {number} bw Box width, pixels.
 * @param {number} bh Box height, pixels.
 * @param {number} start Flat index of the seed pixel in the box.
 * @param {number} connectivity 4 (edge neighbours) or 8 (also diagonal).
 * @returns {Uint8Array} `bh * bw`, 1 on the piece.
 */
function pieceMask(patch, bw, bh, start, connectivity) {
  const id = patch[start];
  const mask = new Uint8Array(bw * bh);
  const stack = new Int32Array(bw * bh);
  let top = 0;
  stack[top++] = start;
  mask[start] = 1;
  while (top > 0) {
    const i = stack[--top];
    const r = (i / bw) | 0;
    const c = i - r * bw;
    for (let dr = -1; dr <= 1; dr++) {
      const nr = r + dr;
      if (nr < 0 || nr >= bh) continue;
      for (let dc = -1; dc <= 1; dc++) {
        if (dr === 0 && dc === 0) continue;
        if (connectivity === 4 && dr !== 0 && dc !== 0) continue;
        const nc = c + dc;
        if (nc < 0 || nc >= bw) continue;
        const j = nr * bw + nc;
        if (!mask[j] && patch[j] === id) {
          mask[j] = 1;
          stack[top++] = j;
        }
      }
    }
  }
  return mask;
}

/**
 * Keep the clicked connected piece of a label; set its other pixels to 0.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number} y Clicked row, pixels (integer).
 * @param {number} x Clicked column, pixels (integer).
 * @param {{feature?: number, connectivity?: 4|8}} [options] `connectivity`
 *   4 (default, like flood fill) or 8 (diagonal neighbours join pieces).
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   The history entry (tight box of the erased pixels), or null when the
 *   click is on background / off the layer or the label is one piece.
 * @throws {RangeError} When connectivity is not 4 or 8.
 */
export function trimLabel(layer, y, x, options = {}) {
  const { feature = 0, connectivity = 4 } = options;
  if (connectivity !== 4 && connectivity !== 8) {
    throw new RangeError(`trim connectivity must be 4 or 8, got ${connectivity}`);
  }
  if (!isInside(layer, y, x)) return null;
  const id = layer.data[y * layer.width + x];
  if (id === 0) return null;
  const bbox = labelBbox(layer, id);
  const bw = bbox[3] - bbox[1];
  const bh = bbox[2] - bbox[0];
  const before = extractPatch(layer, bbox);
  const mask = pieceMask(before, bw, bh, (y - bbox[0]) * bw + (x - bbox[1]), connectivity);
  const after = before.slice();
  for (let i = 0; i < after.length; i++) {
    if (after[i] === id && !mask[i]) after[i] = 0;
  }
  const entry = makeEntry(bbox, before, after, feature);
  if (entry) applyPatch(layer, entry.bbox, entry.after);
  return entry;
}
