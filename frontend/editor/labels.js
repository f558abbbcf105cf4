/**
 * Label layers and rectangular patches of them.
 *
 * A label layer is `{width, height, data}` where `data` is an `Int32Array` of
 * `height * width` label ids in row-major order (index = y * width + x),
 * 0 = background. A crop carries F = 2 layers, one per feature, in the order
 * of {@link FEATURES}.
 *
 * A bounding box ("bbox") is `[y0, x0, y1, x1]` in image pixels, half-open
 * like a NumPy slice: rows y0 <= y < y1, columns x0 <= x < x1. A patch is the
 * `Int32Array` of the bbox's `(y1 - y0) * (x1 - x0)` ids, row-major.
 *
 * A history entry is `{bbox, before, after, feature}`: the patch of layer
 * `feature` (an index into the layer array) before and after one edit.
 *
 * @module editor/labels
 */

/** Feature names, in the order of the label stack's first axis. */
export const FEATURES = Object.freeze(["whole_cell", "nuclear"]);

/**
 * Layer indexes of the features a project annotates, in the order of {@link FEATURES}.
 *
 * @param {string[]} names Feature names from the server, e.g. `["nuclear"]`.
 * @returns {number[]} E.g. `[1]`; every layer when `names` is empty or missing.
 * @throws {Error} On a name that is not one of {@link FEATURES}.
 */
export function featureLayers(names) {
  if (!names || names.length === 0) return FEATURES.map((_, i) => i);
  const unknown = names.filter((n) => !FEATURES.includes(n));
  if (unknown.length) throw new Error(`unknown label feature(s) ${unknown.join(", ")}; expected ${FEATURES.join(" or ")}`);
  return FEATURES.map((f, i) => (names.includes(f) ? i : -1)).filter((i) => i >= 0);
}

/** Largest label id an Int32Array can hold. */
export const MAX_LABEL_ID = 2147483647;

/**
 * Make a label layer.
 *
 * @param {number} width  Columns, pixels (positive integer).
 * @param {number} height Rows, pixels (positive integer).
 * @param {Int32Array} [data] `height * width` ids, row-major; a zero-filled
 *   array when omitted. Used as is (not copied).
 * @returns {{width: number, height: number, data: Int32Array}}
 * @throws {Error} When the size is not a positive integer or `data` is not an
 *   Int32Array of the right length.
 */
export function createLayer(width, height, data) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`a label layer needs a positive integer width and height, got ${width}x${height}`);
  }
  if (data === undefined) data = new Int32Array(width * height);
  if (!(data instanceof Int32Array)) {
    throw new Error("label data must be an Int32Array (label ids are int32; uint16 overflows)");
  }
  if (data.length !== width * height) {
    throw new Error(`label data holds ${data.length} ids but a ${height}x${width} layer needs ${width * height}`);
  }
  return { width, height, data };
}

/**
 * Label id at one pixel (what the hover read-out and the select tool show).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number} y Row, pixels (integer).
 * @param {number} x Column, pixels (integer).
 * @returns {number} The id, or -1 when (y, x) lies outside the layer.
 */
export function getLabel(layer, y, x) {
  if (!isInside(layer, y, x)) return -1;
  return layer.data[y * layer.width + x];
}

/**
 * Set one pixel's id in place (no history entry; tools make those).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number} y Row, pixels.
 * @param {number} x Column, pixels.
 * @param {number} id Label id, 0 .. MAX_LABEL_ID.
 * @throws {RangeError} When (y, x) lies outside the layer.
 */
export function setLabel(layer, y, x, id) {
  if (!isInside(layer, y, x)) {
    throw new RangeError(`pixel (${y}, ${x}) is outside the ${layer.height}x${layer.width} layer`);
  }
  layer.data[y * layer.width + x] = id;
}

/**
 * Whether (y, x) is an integer pixel inside the layer.
 *
 * @param {{width: number, height: number}} layer
 * @param {number} y Row, pixels.
 * @param {number} x Column, pixels.
 * @returns {boolean}
 */
export function isInside(layer, y, x) {
  return Number.isInteger(y) && Number.isInteger(x) && y >= 0 && x >= 0 && y < layer.height && x < layer.width;
}

/**
 * Check that a value is a usable (positive) label id.
 *
 * @param {number} id Candidate id.
 * @param {string} what Names the id in the error message ("brush label").
 * @returns {number} `id`, unchanged.
 * @throws {RangeError} When `id` is not an integer in 1 .. MAX_LABEL_ID.
 */
export function checkLabelId(id, what = "label") {
  if (!Number.isInteger(id) || id < 1 || id > MAX_LABEL_ID) {
    throw new RangeError(`${what} must be a positive integer id (1..${MAX_LABEL_ID}), got ${id}`);
  }
  return id;
}

/**
 * Largest id in the layer.
 *
 * @param {{data: Int32Array}} layer
 * @returns {number} The maximum id, 0 for an empty (all background) layer.
 */
export function maxLabelId(layer) {
  const d = layer.data;
  let m = 0;
  for (let i = 0; i < d.length; i++) if (d[i] > m) m = d[i];
  return m;
}

/**
 * Next free label id: one more than the largest id in use.
 *
 * @param {object|object[]} layers One layer, or several (e.g. one feature
 *   across the crop and its neighbours): the id is free in all of them.
 * @returns {number} An id >= 1 not used in any of `layers`.
 * @throws {RangeError} When the int32 id space is exhausted.
 */
export function newLabelId(layers) {
  const list = Array.isArray(layers) ? layers : [layers];
  let m = 0;
  for (const layer of list) m = Math.max(m, maxLabelId(layer));
  if (m >= MAX_LABEL_ID) throw new RangeError("no free label id is left; relabel (compact) the layer first");
  return m + 1;
}

/**
 * Bounding box of every pixel whose id is in `ids`, in one pass.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number[]} ids Label ids to look for.
 * @returns {number[]|null} `[y0, x0, y1, x1]` (half-open), or null when none
 *   of the ids occurs.
 */
export function labelsBbox(layer, ids) {
  const { width, height, data } = layer;
  const few = ids.length <= 4;
  const wanted = new Set(ids);
  let y0 = height, x0 = width, y1 = -1, x1 = -1;
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * width, (y + 1) * width);
    let first = width, last = -1;
    if (few) {
      // Native indexOf / lastIndexOf per id: much faster than a JS loop.
      for (const id of ids) {
        const f = row.indexOf(id);
        if (f < 0) continue;
        if (f < first) first = f;
        const l = row.lastIndexOf(id);
        if (l > last) last = l;
      }
    } else {
      for (let x = 0; x < width; x++) {
        if (wanted.has(row[x])) { if (x < first) first = x; last = x; }
      }
    }
    if (last >= 0) {
      if (y < y0) y0 = y;
      y1 = y;
      if (first < x0) x0 = first;
      if (last > x1) x1 = last;
    }
  }
  return y1 < 0 ? null : [y0, x0, y1 + 1, x1 + 1];
}

/**
 * Bounding box of one label.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number} id Label id.
 * @returns {number[]|null} `[y0, x0, y1, x1]` (half-open), or null when absent.
 */
export function labelBbox(layer, id) {
  return labelsBbox(layer, [id]);
}

/**
 * Grow a bbox by `margin` pixels on every side, clipped to the image.
 * Use it for the redraw rectangle of an edit: outlines of the pixels just
 * outside an edited box can change too (margin 1).
 *
 * @param {number[]} bbox `[y0, x0, y1, x1]`.
 * @param {number} margin Pixels (integer >= 0).
 * @param {number} height Image rows.
 * @param {number} width Image columns.
 * @returns {number[]} The grown, clipped `[y0, x0, y1, x1]`.
 */
export function growBbox(bbox, margin, height, width) {
  return [
    Math.max(0, bbox[0] - margin), Math.max(0, bbox[1] - margin),
    Math.min(height, bbox[2] + margin), Math.min(width, bbox[3] + margin),
  ];
}

/**
 * Smallest bbox holding both boxes; null boxes are ignored.
 *
 * @param {number[]|null} a `[y0, x0, y1, x1]` or null.
 * @param {number[]|null} b `[y0, x0, y1, x1]` or null.
 * @returns {number[]|null}
 */
export function unionBbox(a, b) {
  if (!a) return b ? b.slice() : null;
  if (!b) return a.slice();
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
}

/**
 * Number of pixels in a bbox.
 *
 * @param {number[]} bbox `[y0, x0, y1, x1]`.
 * @returns {number} `(y1 - y0) * (x1 - x0)`, 0 for an empty box.
 */
export function bboxArea(bbox) {
  return Math.max(0, bbox[2] - bbox[0]) * Math.max(0, bbox[3] - bbox[1]);
}

function checkBbox(layer, bbox) {
  const [y0, x0, y1, x1] = bbox;
  if (!(Number.isInteger(y0) && Number.isInteger(x0) && Number.isInteger(y1) && Number.isInteger(x1)
        && y0 >= 0 && x0 >= 0 && y0 <= y1 && x0 <= x1 && y1 <= layer.height && x1 <= layer.width)) {
    throw new RangeError(`bbox [${bbox}] does not fit the ${layer.height}x${layer.width} layer`);
  }
}

/**
 * Copy the ids inside a bbox.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number[]} bbox `[y0, x0, y1, x1]`, inside the layer.
 * @returns {Int32Array} `(y1 - y0) * (x1 - x0)` ids, row-major.
 * @throws {RangeError} When the bbox does not fit the layer.
 */
export function extractPatch(layer, bbox) {
  checkBbox(layer, bbox);
  const [y0, x0, y1, x1] = bbox;
  const bw = x1 - x0;
  const patch = new Int32Array((y1 - y0) * bw);
  for (let y = y0; y < y1; y++) {
    const start = y * layer.width + x0;
    patch.set(layer.data.subarray(start, start + bw), (y - y0) * bw);
  }
  return patch;
}

/**
 * Write a patch into the layer in place (the inverse of {@link extractPatch}).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number[]} bbox `[y0, x0, y1, x1]`, inside the layer.
 * @param {Int32Array} patch `(y1 - y0) * (x1 - x0)` ids, row-major.
 * @throws {RangeError} When the bbox does not fit or the patch size differs.
 */
export function applyPatch(layer, bbox, patch) {
  checkBbox(layer, bbox);
  const [y0, x0, y1, x1] = bbox;
  const bw = x1 - x0;
  if (patch.length !== (y1 - y0) * bw) {
    throw new RangeError(`patch holds ${patch.length} ids but bbox [${bbox}] covers ${(y1 - y0) * bw}`);
  }
  for (let y = y0; y < y1; y++) {
    const from = (y - y0) * bw;
    layer.data.set(patch.subarray(from, from + bw), y * layer.width + x0);
  }
}

/**
 * Make a history entry from the patches of a box before and after an edit,
 * trimmed to the tight bbox of the pixels that differ.
 *
 * @param {number[]} bbox `[y0, x0, y1, x1]` both patches cover.
 * @param {Int32Array} before Ids before the edit, row-major over `bbox`.
 * @param {Int32Array} after Ids after the edit, same size.
 * @param {number} feature Index of the edited layer (0 whole_cell, 1 nuclear).
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   null when nothing changed.
 */
export function makeEntry(bbox, before, after, feature) {
  const bw = bbox[3] - bbox[1];
  const bh = bbox[2] - bbox[0];
  let ty0 = bh, tx0 = bw, ty1 = -1, tx1 = -1;
  for (let r = 0; r < bh; r++) {
    const row = r * bw;
    for (let c = 0; c < bw; c++) {
      if (before[row + c] !== after[row + c]) {
        if (r < ty0) ty0 = r;
        ty1 = r;
        if (c < tx0) tx0 = c;
        if (c > tx1) tx1 = c;
      }
    }
  }
  if (ty1 < 0) return null;
  const tight = [bbox[0] + ty0, bbox[1] + tx0, bbox[0] + ty1 + 1, bbox[1] + tx1 + 1];
  if (ty0 === 0 && tx0 === 0 && ty1 === bh - 1 && tx1 === bw - 1) {
    return { bbox: tight, before, after, feature };
  }
  const patchView = { width: bw, height: bh };
  const sub = [ty0, tx0, ty1 + 1, tx1 + 1];
  return {
    bbox: tight,
    before: extractPatch({ ...patchView, data: before }, sub),
    after: extractPatch({ ...patchView, data: after }, sub),
    feature,
  };
}
