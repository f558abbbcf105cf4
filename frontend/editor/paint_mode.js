/**
 * How the brush and the eraser paint: their sizes and their mode.
 *
 * Sizes are disc radii in image pixels (radius r covers a disc 2r + 1 px
 * across). `[` and `]` step through {@link RADIUS_STEPS}, whose steps grow
 * with the size, so a fine 1-px line and a broad 49-px stroke are each a few
 * presses away. The brush and the eraser keep a size each.
 *
 * Safe mode (the default) protects the other cells: the brush paints only
 * background (and the cell it paints, so nothing changes there), the eraser
 * erases only one cell (the selected one). Overwrite mode paints over every
 * cell and erases every cell, as an image editor would.
 *
 * @module editor/paint_mode
 */

import { KEYMAP, formatBinding } from "./keys.js";

/** The overwrite switch's shortcut, as the messages name it. */
const OVERWRITE_KEY = formatBinding(KEYMAP.find((b) => b.action === "brush:overwrite"));

/** The radii `[` and `]` step through, pixels (diameters 1, 3, 5, 7, 11, 17, 25, 33, 49, 65, 81). */
export const RADIUS_STEPS = Object.freeze([0, 1, 2, 3, 5, 8, 12, 16, 24, 32, 40]);

/** Largest radius the size controls offer, pixels. */
export const MAX_RADIUS = RADIUS_STEPS[RADIUS_STEPS.length - 1];

/** Sizes each stroke tool starts with: a 7-px brush, and a 1-px eraser (a cut line needs no presses). */
export const DEFAULT_RADII = Object.freeze({ brush: 3, eraser: 0 });

/**
 * The next size up or down the steps from any radius.
 *
 * @param {number} radius Current radius, pixels (need not be a step).
 * @param {1|-1} direction Larger (1) or smaller (-1).
 * @returns {number} The nearest step beyond `radius` that way; the end step when there is none.
 */
export function stepRadius(radius, direction) {
  if (direction > 0) return RADIUS_STEPS.find((r) => r > radius) ?? MAX_RADIUS;
  for (let i = RADIUS_STEPS.length - 1; i >= 0; i--) if (RADIUS_STEPS[i] < radius) return RADIUS_STEPS[i];
  return RADIUS_STEPS[0];
}

/**
 * Index of the step nearest a radius (the size slider's position).
 *
 * @param {number} radius Pixels.
 * @returns {number} 0..RADIUS_STEPS.length - 1.
 */
export function nearestStep(radius) {
  let best = 0;
  for (let i = 1; i < RADIUS_STEPS.length; i++) {
    if (Math.abs(RADIUS_STEPS[i] - radius) < Math.abs(RADIUS_STEPS[best] - radius)) best = i;
  }
  return best;
}

/**
 * Width of the disc a radius paints, pixels.
 *
 * @param {number} radius
 * @returns {number} `2 * floor(radius) + 1`.
 */
export function diameterPx(radius) {
  return 2 * Math.floor(radius) + 1;
}

/**
 * The cell a safe eraser stroke may erase: the selected cell, else the cell
 * the stroke starts on.
 *
 * @param {number|null} selected Selected id, or null.
 * @param {number} startId Id under the stroke's first point (0: background).
 * @returns {number|null} null when neither names a cell.
 */
export function eraserTarget(selected, startId) {
  if (selected !== null && selected > 0) return selected;
  return startId > 0 ? startId : null;
}

/**
 * Options of a {@link import("./tools/brush.js").BrushStroke} for a mode.
 *
 * @param {object} stroke
 * @param {boolean} stroke.erase Eraser (true) or brush.
 * @param {boolean} stroke.overwrite Overwrite mode (true) or safe mode.
 * @param {number} stroke.radius Pixels.
 * @param {number} stroke.feature Layer index.
 * @param {number} [stroke.label] Brush: the id painted.
 * @param {number|null} [stroke.target] Safe eraser: the only id erased ({@link eraserTarget}).
 * @returns {object} `{radius, feature, label, overBackgroundOnly}` or `{radius, feature, erase, onlyLabel}`.
 * @throws {RangeError} For a safe eraser without a target cell.
 */
export function strokeOptions({ erase, overwrite, radius, feature, label, target = null }) {
  if (!erase) return { radius, feature, label, overBackgroundOnly: !overwrite };
  if (!overwrite && !(target > 0)) throw new RangeError("a safe eraser stroke needs the cell it may erase");
  return { radius, feature, erase: true, onlyLabel: overwrite ? null : target };
}

/**
 * What to tell the user when a stroke changed nothing because its mode
 * protected what it crossed (or a safe eraser has no cell to erase: `target` null).
 *
 * @param {{erase: boolean, target?: number|null}} stroke
 * @returns {string}
 */
export function protectedStrokeMessage({ erase, target = null }) {
  const key = OVERWRITE_KEY;
  if (erase && target === null) {
    return `Start the eraser on the cell to erase, or select it first (V); press ${key} to erase every cell.`;
  }
  if (erase) {
    return `The eraser erases only cell #${target} (the selected cell): select the cell to erase, `
      + `or press ${key} to erase every cell.`;
  }
  return `The brush paints only background and the selected cell: it leaves other cells alone. `
    + `Press ${key} to paint over them.`;
}

/**
 * The mode as the status bar and the overwrite switch say it.
 *
 * @param {"brush"|"eraser"} tool
 * @param {boolean} overwrite
 * @param {number|null} selected Selected id.
 * @returns {string}
 */
export function modeText(tool, overwrite, selected) {
  if (overwrite) return tool === "eraser" ? "overwrite: erases every cell" : "overwrite: paints over cells";
  if (tool !== "eraser") return "safe: paints background only";
  return selected === null ? "safe: erases the cell it starts on" : `safe: erases #${selected} only`;
}
