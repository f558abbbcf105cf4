/**
 * Zoom and pan maths between screen (canvas CSS pixels) and image pixels.
 *
 * A viewport is `{scale, offsetX, offsetY}`: screen = image * scale + offset,
 * where `scale` is screen pixels per image pixel and image pixel (y, x)
 * covers [x, x + 1) x [y, y + 1) in image coordinates. Every function returns
 * a new object and never mutates its input.
 *
 * @module editor/viewport
 */

/** Default zoom limits, screen pixels per image pixel. */
export const DEFAULT_MIN_SCALE = 0.05;
export const DEFAULT_MAX_SCALE = 64;

function checkViewport(vp) {
  if (!vp || !(vp.scale > 0) || !Number.isFinite(vp.offsetX) || !Number.isFinite(vp.offsetY)) {
    throw new RangeError(`a viewport needs a positive scale and finite offsets, got ${JSON.stringify(vp)}`);
  }
}

/**
 * Viewport showing the whole image centred in the view.
 *
 * @param {number} imageW Image width, pixels.
 * @param {number} imageH Image height, pixels.
 * @param {number} viewW View width, screen pixels.
 * @param {number} viewH View height, screen pixels.
 * @param {{padding?: number, maxScale?: number}} [options] `padding`: screen
 *   pixels kept free on each side; `maxScale` caps the zoom for tiny images.
 * @returns {{scale: number, offsetX: number, offsetY: number}}
 */
export function fitViewport(imageW, imageH, viewW, viewH, { padding = 0, maxScale = DEFAULT_MAX_SCALE } = {}) {
  if (!(imageW > 0 && imageH > 0 && viewW > 0 && viewH > 0)) {
    throw new RangeError(`image (${imageW}x${imageH}) and view (${viewW}x${viewH}) sizes must be positive`);
  }
  const scale = Math.min(maxScale, Math.max(1e-6, Math.min((viewW - 2 * padding) / imageW, (viewH - 2 * padding) / imageH)));
  return { scale, offsetX: (viewW - imageW * scale) / 2, offsetY: (viewH - imageH * scale) / 2 };
}

/**
 * Screen point -> image coordinates (continuous).
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} sx Screen x, pixels from the canvas's left edge.
 * @param {number} sy Screen y, pixels from the canvas's top edge.
 * @returns {{x: number, y: number}} Image coordinates (floats).
 */
export function screenToImage(vp, sx, sy) {
  checkViewport(vp);
  return { x: (sx - vp.offsetX) / vp.scale, y: (sy - vp.offsetY) / vp.scale };
}

/**
 * Image coordinates -> screen point.
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} x Image x (column), pixels.
 * @param {number} y Image y (row), pixels.
 * @returns {{x: number, y: number}} Screen pixels.
 */
export function imageToScreen(vp, x, y) {
  checkViewport(vp);
  return { x: x * vp.scale + vp.offsetX, y: y * vp.scale + vp.offsetY };
}

/**
 * Image pixel under a screen point, as the tools take it.
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} sx Screen x.
 * @param {number} sy Screen y.
 * @param {number} imageW Image width, pixels.
 * @param {number} imageH Image height, pixels.
 * @returns {number[]|null} `[y, x]` integer pixel, or null off the image.
 */
export function pixelAt(vp, sx, sy, imageW, imageH) {
  const p = screenToImage(vp, sx, sy);
  const x = Math.floor(p.x);
  const y = Math.floor(p.y);
  return x >= 0 && y >= 0 && x < imageW && y < imageH ? [y, x] : null;
}

/**
 * Zoom by a factor keeping the image point under the cursor in place.
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} factor New scale / old scale (> 1 zooms in); the result is
 *   clamped to [minScale, maxScale].
 * @param {number} sx Cursor screen x.
 * @param {number} sy Cursor screen y.
 * @param {{minScale?: number, maxScale?: number}} [limits]
 * @returns {{scale: number, offsetX: number, offsetY: number}}
 */
export function zoomAt(vp, factor, sx, sy, { minScale = DEFAULT_MIN_SCALE, maxScale = DEFAULT_MAX_SCALE } = {}) {
  checkViewport(vp);
  if (!(factor > 0)) throw new RangeError(`zoom factor must be positive, got ${factor}`);
  const scale = Math.min(maxScale, Math.max(minScale, vp.scale * factor));
  const p = screenToImage(vp, sx, sy);
  return { scale, offsetX: sx - p.x * scale, offsetY: sy - p.y * scale };
}

/**
 * Zoom factor of one wheel event: exponential in the scroll distance, so
 * equal scrolls in and out cancel.
 *
 * @param {number} deltaY `WheelEvent.deltaY` in pixels (positive = scroll down = zoom out).
 * @param {number} [perPixel=0.002] Log-zoom per scrolled pixel.
 * @returns {number} Factor for {@link zoomAt}.
 */
export function wheelZoomFactor(deltaY, perPixel = 0.002) {
  return Math.exp(-deltaY * perPixel);
}

/**
 * Move the view by a screen-space drag.
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} dx Screen pixels, positive moves the image right.
 * @param {number} dy Screen pixels, positive moves the image down.
 * @returns {{scale: number, offsetX: number, offsetY: number}}
 */
export function panBy(vp, dx, dy) {
  checkViewport(vp);
  return { scale: vp.scale, offsetX: vp.offsetX + dx, offsetY: vp.offsetY + dy };
}

function clampAxis(offset, imageLen, viewLen, margin) {
  if (imageLen <= viewLen) return (viewLen - imageLen) / 2;
  return Math.min(margin, Math.max(viewLen - imageLen - margin, offset));
}

/**
 * Keep the image in view: along an axis where the scaled image is smaller
 * than the view it is centred; where it is larger, no more than `margin`
 * screen pixels of empty space may show at either side.
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} imageW Image width, pixels.
 * @param {number} imageH Image height, pixels.
 * @param {number} viewW View width, screen pixels.
 * @param {number} viewH View height, screen pixels.
 * @param {{margin?: number}} [options] Screen pixels, default 0.
 * @returns {{scale: number, offsetX: number, offsetY: number}}
 */
export function clampViewport(vp, imageW, imageH, viewW, viewH, { margin = 0 } = {}) {
  checkViewport(vp);
  return {
    scale: vp.scale,
    offsetX: clampAxis(vp.offsetX, imageW * vp.scale, viewW, margin),
    offsetY: clampAxis(vp.offsetY, imageH * vp.scale, viewH, margin),
  };
}

/**
 * Image pixels at least partly visible (what to draw at this zoom).
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} imageW Image width, pixels.
 * @param {number} imageH Image height, pixels.
 * @param {number} viewW View width, screen pixels.
 * @param {number} viewH View height, screen pixels.
 * @returns {number[]|null} `[y0, x0, y1, x1]` (half-open, clipped to the
 *   image), or null when no pixel is visible.
 */
export function visibleRect(vp, imageW, imageH, viewW, viewH) {
  const a = screenToImage(vp, 0, 0);
  const b = screenToImage(vp, viewW, viewH);
  const y0 = Math.max(0, Math.floor(a.y));
  const x0 = Math.max(0, Math.floor(a.x));
  const y1 = Math.min(imageH, Math.ceil(b.y));
  const x1 = Math.min(imageW, Math.ceil(b.x));
  return y0 < y1 && x0 < x1 ? [y0, x0, y1, x1] : null;
}

/**
 * Viewport at the same scale with image point (x, y) at the view's centre
 * (the minimap moves the view this way).
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} x Image x, pixels (floats allowed).
 * @param {number} y Image y, pixels.
 * @param {number} viewW View width, screen pixels.
 * @param {number} viewH View height, screen pixels.
 * @returns {{scale: number, offsetX: number, offsetY: number}}
 */
export function centreAt(vp, x, y, viewW, viewH) {
  checkViewport(vp);
  return { scale: vp.scale, offsetX: viewW / 2 - x * vp.scale, offsetY: viewH / 2 - y * vp.scale };
}

/**
 * Size of a minimap that shows the whole image inside a box, aspect kept.
 *
 * @param {number} imageW Image width, pixels.
 * @param {number} imageH Image height, pixels.
 * @param {number} box Longest side of the minimap, screen pixels.
 * @returns {{width: number, height: number, k: number}} Minimap size in
 *   screen pixels (at least 1 each) and `k`, minimap pixels per image pixel.
 */
export function minimapSize(imageW, imageH, box) {
  if (!(imageW > 0 && imageH > 0 && box > 0)) {
    throw new RangeError(`image (${imageW}x${imageH}) and minimap box (${box}) must be positive`);
  }
  const k = box / Math.max(imageW, imageH);
  return { width: Math.max(1, Math.round(imageW * k)), height: Math.max(1, Math.round(imageH * k)), k };
}

/**
 * The part of the image in view, as a rectangle on the minimap.
 *
 * @param {{scale: number, offsetX: number, offsetY: number}} vp
 * @param {number} imageW Image width, pixels.
 * @param {number} imageH Image height, pixels.
 * @param {number} viewW View width, screen pixels.
 * @param {number} viewH View height, screen pixels.
 * @param {number} k Minimap pixels per image pixel ({@link minimapSize}).
 * @returns {{x: number, y: number, w: number, h: number}|null} Minimap
 *   pixels (floats), clipped to the image; null when none of it is in view.
 */
export function minimapRect(vp, imageW, imageH, viewW, viewH, k) {
  const a = screenToImage(vp, 0, 0);
  const b = screenToImage(vp, viewW, viewH);
  const x0 = Math.max(0, a.x), y0 = Math.max(0, a.y);
  const x1 = Math.min(imageW, b.x), y1 = Math.min(imageH, b.y);
  if (x0 >= x1 || y0 >= y1) return null;
  return { x: x0 * k, y: y0 * k, w: (x1 - x0) * k, h: (y1 - y0) * k };
}
