/**
 * Brush and eraser: a disc stamped along the pointer's path.
 *
 * Points are `[y, x]` in image pixels (floats are rounded to the nearest
 * pixel; points off the image are fine, the stamps are clipped). Between two
 * successive points the disc is stamped at every pixel of the straight line
 * joining them, so a fast pointer leaves no gaps. A stroke is one undo entry.
 *
 * Page use: `const s = new BrushStroke(layer, opts)` on pointerdown,
 * `s.addPoint(y, x)` on each pointermove (it returns the rectangle to redraw),
 * `history.push(s.finish())` on pointerup.
 *
 * @module editor/tools/brush
 */

import { checkLabelId } from "../labels.js";
import { ChangeLog } from "./change_log.js";

/** Largest brush radius accepted, pixels. */
export const MAX_BRUSH_RADIUS = 512;

/**
 * Half widths of a disc, row by row: row `dy` (from -r to r) of the disc
 * covers columns `-h[dy + r] .. h[dy + r]`. The disc holds the pixels whose
 * centre lies within `radius` of the disc's centre pixel.
 *
 * @param {number} radius Pixels, >= 0 (0 gives a single pixel).
 * @returns {Int32Array} Length `2 * floor(radius) + 1`.
 */
export function discHalfWidths(radius) {
  const r = Math.floor(radius);
  const halves = new Int32Array(2 * r + 1);
  for (let dy = -r; dy <= r; dy++) {
    halves[dy + r] = Math.floor(Math.sqrt(radius * radius - dy * dy) + 1e-9);
  }
  return halves;
}

/**
 * Pixels of the straight line from one pixel to another: every step moves at
 * most one pixel in y and one in x, so the line is 8-connected.
 *
 * @param {number} y0 Start row (integer).
 * @param {number} x0 Start column (integer).
 * @param {number} y1 End row (integer).
 * @param {number} x1 End column (integer).
 * @returns {number[][]} `[y, x]` pairs, excluding the start, ending at the end
 *   (empty when both are the same pixel).
 */
export function linePixels(y0, x0, y1, x1) {
  const dy = y1 - y0;
  const dx = x1 - x0;
  const n = Math.max(Math.abs(dy), Math.abs(dx));
  const out = [];
  for (let i = 1; i <= n; i++) {
    out.push([Math.round(y0 + (dy * i) / n), Math.round(x0 + (dx * i) / n)]);
  }
  return out;
}

/** One brush or eraser stroke on one layer, built up point by point. */
export class BrushStroke {
  /**
   * @param {{width: number, height: number, data: Int32Array}} layer Edited
   *   in place.
   * @param {object} options
   * @param {number} [options.radius=2] Disc radius, pixels (0 = one pixel).
   * @param {boolean} [options.erase=false] Eraser: set pixels to 0.
   * @param {number} [options.label] Brush only: the id painted (>= 1).
   * @param {boolean} [options.overBackgroundOnly=false] Brush only: paint
   *   only pixels that are background (0), never over another label.
   * @param {number|null} [options.onlyLabel=null] Eraser only: erase only this
   *   id (the selected label); null erases every id.
   * @param {number} [options.feature=0] Layer index recorded in the entry.
   * @throws {RangeError} On a bad radius or brush label.
   */
  constructor(layer, options = {}) {
    const { radius = 2, erase = false, label, overBackgroundOnly = false, onlyLabel = null, feature = 0 } = options;
    if (!Number.isFinite(radius) || radius < 0 || radius > MAX_BRUSH_RADIUS) {
      throw new RangeError(`brush radius must be between 0 and ${MAX_BRUSH_RADIUS} pixels, got ${radius}`);
    }
    if (!erase) checkLabelId(label, "brush label");
    if (erase && onlyLabel !== null) checkLabelId(onlyLabel, "eraser's selected label");
    this.layer = layer;
    this.erase = erase;
    this.value = erase ? 0 : label;
    this.overBackgroundOnly = !erase && overBackgroundOnly;
    this.onlyLabel = erase ? onlyLabel : null;
    this.halves = discHalfWidths(radius);
    this.r = (this.halves.length - 1) >> 1;
    this.log = new ChangeLog(layer, feature);
    /** Pixel visits the mode protected (another cell under a safe brush or eraser); > 0: the stroke met one. */
    this.blocked = 0;
    this.last = null;
    this.finished = false;
  }

  /**
   * Extend the stroke to a new pointer position, stamping the disc along the
   * line from the previous position (or once, for the first point).
   *
   * @param {number} y Row, image pixels (rounded).
   * @param {number} x Column, image pixels (rounded).
   * @returns {number[]|null} `[y0, x0, y1, x1]` of the pixels this call
   *   changed (the rectangle to redraw), or null when none changed.
   * @throws {Error} After {@link BrushStroke#finish}.
   */
  addPoint(y, x) {
    if (this.finished) throw new Error("this stroke is finished; start a new BrushStroke");
    if (!Number.isFinite(y) || !Number.isFinite(x)) throw new RangeError(`stroke point (${y}, ${x}) is not a number`);
    const py = Math.round(y);
    const px = Math.round(x);
    const dirty = { y0: Infinity, x0: Infinity, y1: -1, x1: -1 };
    if (this.last === null) {
      this.stamp(py, px, dirty);
    } else {
      const [ly, lx] = this.last;
      const n = Math.max(Math.abs(py - ly), Math.abs(px - lx));
      for (let i = 1; i <= n; i++) {
        this.stamp(Math.round(ly + ((py - ly) * i) / n), Math.round(lx + ((px - lx) * i) / n), dirty);
      }
    }
    this.last = [py, px];
    return dirty.y1 < 0 ? null : [dirty.y0, dirty.x0, dirty.y1 + 1, dirty.x1 + 1];
  }

  /** Stamp the disc centred on pixel (cy, cx); widen `dirty` by what changed. */
  stamp(cy, cx, dirty) {
    const { width, height, data } = this.layer;
    const { halves, r, value, overBackgroundOnly, onlyLabel, log } = this;
    if (cy + r < 0 || cy - r >= height || cx + r < 0 || cx - r >= width) return;
    let blocked = 0;
    for (let dy = -r; dy <= r; dy++) {
      const y = cy + dy;
      if (y < 0 || y >= height) continue;
      const h = halves[dy + r];
      const xa = Math.max(0, cx - h);
      const xb = Math.min(width - 1, cx + h);
      const row = y * width;
      let changedFirst = -1, changedLast = -1;
      for (let x = xa; x <= xb; x++) {
        const v = data[row + x];
        if (v === value) continue;
        if ((overBackgroundOnly && v !== 0) || (onlyLabel !== null && v !== onlyLabel)) {
          blocked++;
          continue;
        }
        log.set(row + x, y, x, value);
        if (changedFirst < 0) changedFirst = x;
        changedLast = x;
      }
      if (changedFirst >= 0) {
        if (y < dirty.y0) dirty.y0 = y;
        if (y > dirty.y1) dirty.y1 = y;
        if (changedFirst < dirty.x0) dirty.x0 = changedFirst;
        if (changedLast > dirty.x1) dirty.x1 = changedLast;
      }
    }
    this.blocked += blocked;
  }

  /**
   * End the stroke.
   *
   * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
   *   One history entry for the whole stroke (tight bbox of the changed
   *   pixels), or null when the stroke changed nothing.
   */
  finish() {
    this.finished = true;
    return this.log.toEntry();
  }
}

function strokeAlong(layer, points, options) {
  const stroke = new BrushStroke(layer, options);
  for (const [y, x] of points) stroke.addPoint(y, x);
  return stroke.finish();
}

/**
 * Paint a whole stroke with the brush at once.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number[][]} points `[y, x]` pointer positions, image pixels.
 * @param {{label: number, radius?: number, overBackgroundOnly?: boolean, feature?: number}} options
 *   See {@link BrushStroke}.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 */
export function paintStroke(layer, points, options) {
  return strokeAlong(layer, points, { ...options, erase: false });
}

/**
 * Erase along a whole stroke at once.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer Edited in place.
 * @param {number[][]} points `[y, x]` pointer positions, image pixels.
 * @param {{radius?: number, onlyLabel?: number|null, feature?: number}} [options]
 *   See {@link BrushStroke}.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
 */
export function eraseStroke(layer, points, options = {}) {
  return strokeAlong(layer, points, { ...options, erase: true });
}
