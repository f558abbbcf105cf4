/**
 * Crop geometry on the review page: which crop a click means (crops overlap
 * at their seams) and the crop borders stroked on the editor's screen-sized
 * overlay canvas (crisp at any zoom; the cost grows with the crops in view,
 * not with the image size).
 *
 * Crops are `{id, index, bbox: [y0, x0, y1, x1], is_gold}` as the review API
 * sends them (image pixels, half-open).
 *
 * @module pages/review/crop_borders
 */

/** CSS colours of the crop borders. */
export const CROP_COLOURS = Object.freeze({
  border: "rgba(110, 215, 255, 0.9)",
  gold: "#ffd54a",
  model: "#c7a4ff",
  selected: "#ff6b6b",
  selectedFill: "rgba(240, 96, 90, 0.24)",
  hoverFill: "rgba(255, 255, 255, 0.12)",
});

/**
 * The crop a click at image pixel (y, x) means: of the crops that contain
 * it (crops overlap at their seams), the one whose centre is nearest; ties
 * go to the crop listed first.
 *
 * @param {{id: number, bbox: number[]}[]} crops `bbox` `[y0, x0, y1, x1]`.
 * @param {number} y Row, pixels (a float is fine).
 * @param {number} x Column, pixels.
 * @returns {object|null} The crop, or null when none contains the point.
 */
export function cropAt(crops, y, x) {
  let best = null;
  let bestDistance = Infinity;
  for (const crop of crops) {
    const [y0, x0, y1, x1] = crop.bbox;
    if (y < y0 || y >= y1 || x < x0 || x >= x1) continue;
    const dy = y - (y0 + y1) / 2, dx = x - (x0 + x1) / 2;
    const distance = dy * dy + dx * dx;
    if (distance < bestDistance) {
      best = crop;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Screen rectangle of a crop (CSS pixels, snapped to half pixels so a 1 px
 * line is crisp).
 *
 * @param {number[]} bbox `[y0, x0, y1, x1]`, image pixels.
 * @param {{scale: number, offsetX: number, offsetY: number}} viewport
 * @returns {{x: number, y: number, w: number, h: number}}
 */
export function cropScreenRect([y0, x0, y1, x1], { scale, offsetX, offsetY }) {
  const left = Math.round(x0 * scale + offsetX) + 0.5;
  const top = Math.round(y0 * scale + offsetY) + 0.5;
  const right = Math.round(x1 * scale + offsetX) - 0.5;
  const bottom = Math.round(y1 * scale + offsetY) - 0.5;
  return { x: left, y: top, w: Math.max(0, right - left), h: Math.max(0, bottom - top) };
}

/**
 * Stroke the crop borders on the overlay canvas: every crop in view, gold
 * crops dashed, selected crops filled red and tagged with their index, the
 * crop under the pointer (while picking) lightened.
 *
 * @param {CanvasRenderingContext2D} ctx Overlay, CSS-pixel transform.
 * @param {{scale: number, offsetX: number, offsetY: number}} viewport
 * @param {{viewW: number, viewH: number}} size View size, CSS pixels.
 * @param {{id: number, index: number, bbox: number[], is_gold: boolean}[]} crops
 * @param {{showAll?: boolean, selected?: Set<number>, hoverId?: number|null}} [options]
 *   `showAll`: draw every border (false: only the selected and hovered crops).
 */
export function drawCropBorders(ctx, viewport, { viewW, viewH }, crops, { showAll = true, selected = new Set(), hoverId = null } = {}) {
  ctx.save();
  ctx.font = "600 12px system-ui, sans-serif";
  ctx.textBaseline = "top";
  const tags = [];
  for (const crop of crops) {
    const isSelected = selected.has(crop.id);
    const isHover = crop.id === hoverId;
    if (!showAll && !isSelected && !isHover) continue;
    const r = cropScreenRect(crop.bbox, viewport);
    if (r.x > viewW || r.y > viewH || r.x + r.w < 0 || r.y + r.h < 0) continue;
    if (isSelected || isHover) {
      ctx.fillStyle = isSelected ? CROP_COLOURS.selectedFill : CROP_COLOURS.hoverFill;
      ctx.fillRect(r.x, r.y, r.w, r.h);
    }
    const unchecked = crop.source === "model";
    ctx.setLineDash(crop.is_gold ? [6, 4] : unchecked ? [2, 3] : []);
    ctx.lineWidth = isSelected ? 2 : 1;
    ctx.strokeStyle = isSelected ? CROP_COLOURS.selected : crop.is_gold ? CROP_COLOURS.gold
      : unchecked ? CROP_COLOURS.model : CROP_COLOURS.border;
    ctx.strokeRect(r.x, r.y, r.w, r.h);
    if (isSelected || isHover || (r.w > 70 && r.h > 40)) tags.push({ crop, r, isSelected });
  }
  ctx.setLineDash([]);
  for (const { crop, r, isSelected } of tags) {
    const text = `#${crop.index}${crop.is_gold ? " gold" : crop.source === "model" ? " model, unchecked" : ""}`;
    const w = ctx.measureText(text).width + 8;
    ctx.fillStyle = isSelected ? "rgba(120, 20, 20, 0.85)" : "rgba(10, 14, 20, 0.7)";
    ctx.fillRect(r.x + 3, r.y + 3, w, 17);
    ctx.fillStyle = isSelected ? "#ffd9d6" : crop.is_gold ? CROP_COLOURS.gold
      : crop.source === "model" ? CROP_COLOURS.model : "#d8f3ff";
    ctx.fillText(text, r.x + 7, r.y + 5);
  }
  ctx.restore();
}
