/**
 * Cut: split a cell along a line the annotator draws across it (two cells
 * that the labels hold under one id).
 *
 * The stroke is the polyline through the pointer positions, drawn as an
 * 8-connected, one-pixel line. Taking its pixels out of the cell leaves
 * 4-connected pieces; every pixel of the line (and every crumb smaller than
 * `minPiece`) then goes to the piece most of its 4-neighbours belong to, the
 * larger piece on a tie, so the pieces touch along the line and no pixel of
 * the cell is lost. The largest piece keeps the id, the others get new ids.
 * A line that does not cut the cell in two changes nothing.
 *
 * Page use: collect the pointer positions while dragging, then
 * `const label = cellUnderStroke(layer, points, selected)` and
 * `history.push(splitAlongLine(layer, points, {label, nextId}))` on release.
 *
 * @module editor/tools/line_split
 */

import {
  MAX_LABEL_ID, applyPatch, checkLabelId, extractPatch, labelBbox, makeEntry, newLabelId,
} from "../labels.js";
import { linePixels } from "./brush.js";

/**
 * Smallest piece a cut may leave, pixels: smaller ones are crumbs and join a
 * neighbouring piece (the dataset's QC drops cells under 15 px anyway).
 */
export const MIN_PIECE_PX = 15;

/**
 * Pixels of the polyline through the stroke's points, clipped to the layer.
 *
 * @param {number[][]} points `[y, x]` pointer positions, image pixels (floats
 *   are rounded; points off the layer are fine).
 * @param {number} height Layer rows.
 * @param {number} width Layer columns.
 * @returns {number[]} Flat indices `y * width + x`, each once, in stroke order.
 */
export function strokePixels(points, height, width) {
  const seen = new Set();
  const out = [];
  const keep = (y, x) => {
    if (y < 0 || x < 0 || y >= height || x >= width) return;
    const i = y * width + x;
    if (!seen.has(i)) { seen.add(i); out.push(i); }
  };
  let last = null;
  for (const [fy, fx] of points) {
    if (!Number.isFinite(fy) || !Number.isFinite(fx)) {
      throw new RangeError(`stroke point (${fy}, ${fx}) is not a number`);
    }
    const y = Math.round(fy);
    const x = Math.round(fx);
    if (last === null) keep(y, x);
    else for (const [py, px] of linePixels(last[0], last[1], y, x)) keep(py, px);
    last = [y, x];
  }
  return out;
}

/**
 * The cell a stroke is meant to cut: `preferred` (the selected cell) when the
 * stroke crosses it, else the id under the most stroke pixels (the first one
 * met on a tie).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number[][]} points `[y, x]` pointer positions, image pixels.
 * @param {number|null} [preferred=null] Id to cut when the stroke crosses it.
 * @returns {number|null} The id, or null when the stroke crosses no cell.
 */
export function cellUnderStroke(layer, points, preferred = null) {
  const counts = new Map();
  for (const i of strokePixels(points, layer.height, layer.width)) {
    const id = layer.data[i];
    if (id > 0) counts.set(id, (counts.get(id) || 0) + 1);
  }
  if (preferred !== null && counts.has(preferred)) return preferred;
  let best = null, most = 0;
  for (const [id, n] of counts) if (n > most) { best = id; most = n; }
  return best;
}

/**
 * 4-connected components of the pixels where `mask` is 1.
 *
 * @param {Uint8Array} mask `bh * bw`.
 * @param {number} bw Box width.
 * @param {number} bh Box height.
 * @returns {{comp: Int32Array, sizes: number[]}} `comp`: 1-based component
 *   per pixel (0 outside the mask); `sizes[k - 1]`: pixels of component k.
 */
function components(mask, bw, bh) {
  const comp = new Int32Array(bw * bh);
  const stack = new Int32Array(bw * bh);
  const sizes = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || comp[start]) continue;
    const k = sizes.length + 1;
    let top = 0, size = 0;
    stack[top++] = start;
    comp[start] = k;
    while (top > 0) {
      const i = stack[--top];
      size++;
      const r = (i / bw) | 0;
      const c = i - r * bw;
      const near = [r > 0 ? i - bw : -1, r < bh - 1 ? i + bw : -1, c > 0 ? i - 1 : -1, c < bw - 1 ? i + 1 : -1];
      for (const j of near) {
        if (j >= 0 && mask[j] && !comp[j]) { comp[j] = k; stack[top++] = j; }
      }
    }
    sizes.push(size);
  }
  return { comp, sizes };
}

/**
 * Give every unassigned cell pixel (`owner` -1) the piece most of its
 * 4-neighbours hold (lowest rank on a tie), sweep by sweep, until none is left
 * or no sweep makes progress.
 *
 * @param {Int32Array} owner Per pixel: piece rank (0 = largest), -1 to assign,
 *   -2 outside the cut cell. Edited in place.
 * @param {number} bw Box width.
 * @param {number} bh Box height.
 */
function assignByNeighbours(owner, bw, bh) {
  let open = [];
  for (let i = 0; i < owner.length; i++) if (owner[i] === -1) open.push(i);
  while (open.length) {
    const decided = [];
    const still = [];
    for (const i of open) {
      const r = (i / bw) | 0;
      const c = i - r * bw;
      const votes = new Map();
      for (const j of [r > 0 ? i - bw : -1, r < bh - 1 ? i + bw : -1, c > 0 ? i - 1 : -1, c < bw - 1 ? i + 1 : -1]) {
        if (j >= 0 && owner[j] >= 0) votes.set(owner[j], (votes.get(owner[j]) || 0) + 1);
      }
      let best = -1, most = 0;
      for (const [rank, n] of votes) if (n > most || (n === most && rank < best)) { best = rank; most = n; }
      if (best >= 0) decided.push([i, best]); else still.push(i);
    }
    if (!decided.length) return;
    for (const [i, rank] of decided) owner[i] = rank;
    open = still;
  }
}

/**
 * Cut a cell along a drawn line; the pieces on either side get their own ids.
 *
 * Only the 4-connected parts of the cell that the line crosses are cut; a
 * part is cut when at least two pieces of `minPiece` pixels or more remain
 * once the line is taken out. In each cut part the largest piece keeps
 * `label` and the others get `nextId`, `nextId + 1`, ... in order of size.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number[][]} points `[y, x]` pointer positions of the stroke, image pixels.
 * @param {object} options
 * @param {number} options.label Id of the cell to cut (see {@link cellUnderStroke}).
 * @param {number} [options.nextId] First new id; it and the ids after it must
 *   be free (default: one more than the layer's largest id).
 * @param {number} [options.minPiece=MIN_PIECE_PX] Smallest piece kept, pixels (>= 1).
 * @param {number} [options.feature=0] Layer index recorded in the entry.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 *   One history entry, or null when the line does not cut the cell in two
 *   (the layer is then unchanged).
 * @throws {RangeError} On a bad label, nextId or minPiece.
 */
export function splitAlongLine(layer, points, options) {
  const { label, feature = 0, minPiece = MIN_PIECE_PX } = options;
  checkLabelId(label, "label to cut");
  const nextId = options.nextId ?? newLabelId(layer);
  checkLabelId(nextId, "first new id");
  if (!Number.isInteger(minPiece) || minPiece < 1) {
    throw new RangeError(`the smallest piece must be a whole number of pixels >= 1, got ${minPiece}`);
  }
  const bbox = labelBbox(layer, label);
  if (!bbox) return null;
  const [y0, x0, y1, x1] = bbox;
  const bw = x1 - x0;
  const bh = y1 - y0;
  const before = extractPatch(layer, bbox);
  const cell = new Uint8Array(before.length);
  for (let i = 0; i < before.length; i++) cell[i] = before[i] === label ? 1 : 0;
  const line = new Uint8Array(before.length);
  for (const i of strokePixels(points, layer.height, layer.width)) {
    const y = (i / layer.width) | 0;
    const x = i - y * layer.width;
    if (y < y0 || y >= y1 || x < x0 || x >= x1) continue;
    const j = (y - y0) * bw + (x - x0);
    if (cell[j]) line[j] = 1;
  }
  const parts = components(cell, bw, bh).comp;
  const rest = cell.slice();
  for (let i = 0; i < rest.length; i++) if (line[i]) rest[i] = 0;
  const pieces = components(rest, bw, bh);
  // Pieces of each crossed part, biggest first; a part is cut when two or more are big enough.
  const crossed = new Map();
  for (let i = 0; i < line.length; i++) if (line[i]) crossed.set(parts[i], []);
  const seenPiece = new Set();
  for (let i = 0; i < rest.length; i++) {
    const k = pieces.comp[i];
    if (!k || seenPiece.has(k) || !crossed.has(parts[i])) continue;
    seenPiece.add(k);
    if (pieces.sizes[k - 1] >= minPiece) crossed.get(parts[i]).push(k);
  }
  const after = before.slice();
  let fresh = nextId;
  let cut = false;
  for (const [part, kept] of crossed) {
    if (kept.length < 2) continue;
    cut = true;
    kept.sort((a, b) => pieces.sizes[b - 1] - pieces.sizes[a - 1] || a - b);
    const rank = new Map(kept.map((k, r) => [k, r]));
    const owner = new Int32Array(before.length).fill(-2);
    for (let i = 0; i < owner.length; i++) {
      if (parts[i] !== part) continue;
      owner[i] = rank.has(pieces.comp[i]) ? rank.get(pieces.comp[i]) : -1;
    }
    assignByNeighbours(owner, bw, bh);
    const ids = kept.map((_, r) => (r === 0 ? label : fresh + r - 1));
    fresh += kept.length - 1;
    for (let i = 0; i < owner.length; i++) if (owner[i] >= 0) after[i] = ids[owner[i]];
  }
  if (!cut) return null;
  if (fresh - 1 > MAX_LABEL_ID) throw new RangeError("no free label id is left for the new pieces");
  const entry = makeEntry(bbox, before, after, feature);
  if (entry) applyPatch(layer, entry.bbox, entry.after);
  return entry;
}
