/**
 * Pixel masks drawn over the editor's image: blending a mask's colour into
 * RGBA pixels inside a dirty rectangle, and the boxes a mask (or a change of
 * a mask) covers, so a repaint can stay local.
 *
 * Masks are flat `Uint8Array`s, row-major, non-zero = on. Rectangles are
 * `[y0, x0, y1, x1]` in image pixels, half-open.
 *
 * @module pages/review/masks
 */

function checkRect(rect, width, height) {
  const [y0, x0, y1, x1] = rect;
  if (!(y0 >= 0 && x0 >= 0 && y1 <= height && x1 <= width && y0 <= y1 && x0 <= x1)) {
    throw new RangeError(`rectangle [${rect}] does not fit the ${height}x${width} image`);
  }
}

/**
 * Blend a mask's colour over RGBA pixels, inside `rect` only: outline pixels
 * (a 4-neighbour inside the image is off) at `edge` opacity, the others at
 * `fill`. Alpha bytes are left as they are.
 *
 * @param {Uint8Array} mask `height * width` values, non-zero = on.
 * @param {number} width Image width, pixels.
 * @param {number} height Image height, pixels.
 * @param {Uint8ClampedArray} out `height * width * 4` RGBA bytes.
 * @param {number[]} rect `[y0, x0, y1, x1]` to paint.
 * @param {{colour: number[], fill: number, edge: number}} style
 * @throws {RangeError} When sizes disagree, the rectangle is off the image or
 *   an opacity is outside 0..1.
 */
export function paintMask(mask, width, height, out, rect, { colour, fill, edge }) {
  if (mask.length !== width * height) throw new RangeError(`the mask holds ${mask.length} values, expected ${width * height}`);
  if (out.length !== width * height * 4) throw new RangeError(`output holds ${out.length} bytes, expected ${width * height * 4}`);
  if (!(fill >= 0 && fill <= 1 && edge >= 0 && edge <= 1)) throw new RangeError(`opacities must be within 0..1, got ${fill} and ${edge}`);
  checkRect(rect, width, height);
  const [r, g, b] = colour;
  const aFill = Math.round(fill * 256), aEdge = Math.round(edge * 256);
  const [y0, x0, y1, x1] = rect;
  for (let y = y0; y < y1; y++) {
    const row = y * width;
    for (let x = x0; x < x1; x++) {
      const i = row + x;
      if (mask[i] === 0) continue;
      const onEdge = (y > 0 && mask[i - width] === 0) || (y < height - 1 && mask[i + width] === 0)
        || (x > 0 && mask[i - 1] === 0) || (x < width - 1 && mask[i + 1] === 0);
      const a = onEdge ? aEdge : aFill;
      const keep = 256 - a;
      const o = i * 4;
      out[o] = (out[o] * keep + r * a) >> 8;
      out[o + 1] = (out[o + 1] * keep + g * a) >> 8;
      out[o + 2] = (out[o + 2] * keep + b * a) >> 8;
    }
  }
}

/**
 * Bounding box of a mask's pixels.
 *
 * @param {Uint8Array} mask `height * width` values.
 * @param {number} width Pixels.
 * @param {number} height Pixels.
 * @returns {number[]|null} `[y0, x0, y1, x1]`, or null when the mask is empty.
 */
export function maskBox(mask, width, height) {
  return diffBox(mask, null, width, height);
}

/**
 * Bounding box of the pixels where two masks differ (or, with `b` null,
 * where `a` is on).
 *
 * @param {Uint8Array} a `height * width` values.
 * @param {Uint8Array|null} b Same size, or null.
 * @param {number} width Pixels.
 * @param {number} height Pixels.
 * @returns {number[]|null} `[y0, x0, y1, x1]`, or null when nothing differs.
 * @throws {RangeError} When the sizes disagree.
 */
export function diffBox(a, b, width, height) {
  if (a.length !== width * height || (b && b.length !== a.length)) {
    throw new RangeError(`masks must hold ${width * height} values, got ${a.length}${b ? ` and ${b.length}` : ""}`);
  }
  let y0 = height, x0 = width, y1 = -1, x1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let first = -1, last = -1;
    for (let x = 0; x < width; x++) {
      const differs = b ? (a[row + x] !== 0) !== (b[row + x] !== 0) : a[row + x] !== 0;
      if (differs) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    if (y < y0) y0 = y;
    y1 = y;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
  }
  return y1 < 0 ? null : [y0, x0, y1 + 1, x1 + 1];
}
