/**
 * Whole-label tools: replace (merge), swap, delete. Each first finds the bbox
 * of the labels involved (one pass over the layer), then reads, rewrites and
 * records only that box.
 *
 * @module editor/tools/relabel
 */

import { applyPatch, checkLabelId, extractPatch, labelsBbox, makeEntry } from "../labels.js";

function rewriteBox(layer, ids, feature, rewrite) {
  const bbox = labelsBbox(layer, ids);
  if (bbox === null) return null;
  const before = extractPatch(layer, bbox);
  const after = before.slice();
  rewrite(after);
  const entry = makeEntry(bbox, before, after, feature);
  if (entry) applyPatch(layer, entry.bbox, entry.after);
  return entry;
}

/**
 * Replace label `from` by label `to` everywhere: merges `from` into `to`
 * (`to` = 0 deletes `from`).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number} from Id that disappears (>= 1).
 * @param {number} to Id it becomes (>= 0).
 * @param {{feature?: number}} [options] Layer index recorded in the entry.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   The history entry (bbox of `from`), or null when `from` is absent or
 *   equals `to`.
 * @throws {RangeError} On an invalid id.
 */
export function replaceLabel(layer, from, to, options = {}) {
  checkLabelId(from, "label to replace");
  if (to !== 0) checkLabelId(to, "replacement label");
  if (from === to) return null;
  return rewriteBox(layer, [from], options.feature ?? 0, (patch) => {
    for (let i = 0; i < patch.length; i++) if (patch[i] === from) patch[i] = to;
  });
}

/**
 * Exchange two labels' ids.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number} a First id (>= 1).
 * @param {number} b Second id (>= 1).
 * @param {{feature?: number}} [options] Layer index recorded in the entry.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   The history entry (bbox of both labels), or null when neither occurs or
 *   `a === b`.
 * @throws {RangeError} On an invalid id.
 */
export function swapLabels(layer, a, b, options = {}) {
  checkLabelId(a, "first label to swap");
  checkLabelId(b, "second label to swap");
  if (a === b) return null;
  return rewriteBox(layer, [a, b], options.feature ?? 0, (patch) => {
    for (let i = 0; i < patch.length; i++) {
      if (patch[i] === a) patch[i] = b;
      else if (patch[i] === b) patch[i] = a;
    }
  });
}

/**
 * Delete a label: its pixels become background.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number} label Id to delete (>= 1).
 * @param {{feature?: number}} [options] Layer index recorded in the entry.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   The history entry, or null when the label is absent.
 * @throws {RangeError} On an invalid id.
 */
export function deleteLabel(layer, label, options = {}) {
  checkLabelId(label, "label to delete");
  return replaceLabel(layer, label, 0, options);
}
