/**
 * Grow and shrink one label by one pixel (4-neighbour dilation / erosion),
 * working only inside the label's bbox grown by one pixel.
 *
 * @module editor/tools/morph
 */

import { applyPatch, checkLabelId, extractPatch, growBbox, labelBbox, makeEntry } from "../labels.js";

function morph(layer, label, feature, grow) {
  checkLabelId(label, grow ? "label to grow" : "label to shrink");
  const tight = labelBbox(layer, label);
  if (tight === null) return null;
  const bbox = growBbox(tight, 1, layer.height, layer.width);
  const bw = bbox[3] - bbox[1];
  const bh = bbox[2] - bbox[0];
  const before = extractPatch(layer, bbox);
  const after = before.slice();
  for (let r = 0; r < bh; r++) {
    for (let c = 0; c < bw; c++) {
      const i = r * bw + c;
      const v = before[i];
      if (grow ? v !== 0 : v !== label) continue;
      // A neighbour off the box is either off the image (the crop edge is not
      // a cell boundary, so it must not erode: count it as the pixel itself)
      // or outside bbox ± 1, where the label cannot be: same answer either way.
      const up = r > 0 ? before[i - bw] : v;
      const down = r < bh - 1 ? before[i + bw] : v;
      const left = c > 0 ? before[i - 1] : v;
      const right = c < bw - 1 ? before[i + 1] : v;
      if (grow) {
        if (up === label || down === label || left === label || right === label) after[i] = label;
      } else if (up !== label || down !== label || left !== label || right !== label) {
        after[i] = 0;
      }
    }
  }
  const entry = makeEntry(bbox, before, after, feature);
  if (entry) applyPatch(layer, entry.bbox, entry.after);
  return entry;
}

/**
 * Dilate a label by one pixel: background pixels with a 4-neighbour of the
 * label join it. Other labels are never overwritten.
 *
 * The image edge does not count as a neighbour (a cell cut by the crop edge
 * keeps its shape there).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number} label Id to grow (>= 1).
 * @param {{feature?: number}} [options] Layer index recorded in the entry.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   The history entry, or null when the label is absent or cannot grow.
 * @throws {RangeError} When `label` is not a positive integer id.
 */
export function growLabel(layer, label, options = {}) {
  return morph(layer, label, options.feature ?? 0, true);
}

/**
 * Erode a label by one pixel: its pixels with a 4-neighbour of another id
 * (background or another label) become background. The image edge does not
 * erode: a cell cut by the crop edge stays flush with it.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number} label Id to shrink (>= 1).
 * @param {{feature?: number}} [options] Layer index recorded in the entry.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   The history entry, or null when the label is absent or nothing erodes.
 * @throws {RangeError} When `label` is not a positive integer id.
 */
export function shrinkLabel(layer, label, options = {}) {
  return morph(layer, label, options.feature ?? 0, false);
}
