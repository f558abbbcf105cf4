/**
 * The review page's overlays: seam conflicts from the stitch, cells the crowd
 * changed against the model's prediction, and the crop borders.
 *
 * Conflicts and changed cells are pixel masks: they are painted into the
 * editor's image pixels after the labels (`editor.pixelLayers`), so they
 * render by dirty rectangles and 256 px tiles like the labels do, and a
 * toggle repaints only the box that holds mask pixels. Crop borders are
 * geometry: they are stroked on the screen-sized overlay canvas
 * (`editor.screenLayers`), crisp at any zoom, at a cost that grows with the
 * number of crops in view, not with the image size.
 *
 * @module pages/review/overlays
 */

import { cropAt, drawCropBorders } from "./crop_borders.js";
import { diffBox, maskBox, paintMask } from "./masks.js";

/** Overlay names, in panel order. */
export const OVERLAYS = Object.freeze(["conflicts", "changed", "uncertain", "crops"]);

/**
 * How each mask overlay is drawn: `colour` RGB 0..255; `fill` opacity of
 * interior pixels and `edge` of pixels on the mask's outline, 0..1.
 */
export const MASK_STYLES = Object.freeze({
  conflicts: Object.freeze({ colour: [255, 176, 0], fill: 0.8, edge: 1 }),
  changed: Object.freeze({ colour: [255, 61, 240], fill: 0.3, edge: 0.95 }),
  uncertain: Object.freeze({ colour: [0, 229, 255], fill: 0.22, edge: 0.9 }),
});

/** Mask overlays with one plane per label layer (the others have one plane). */
const PER_FEATURE = new Set(["conflicts", "uncertain"]);

/**
 * The overlays of one editor: the masks, what is shown, and the crops the
 * reviewer picked for a rejection. Installs itself as a pixel layer and a
 * screen layer of the editor.
 */
export class ReviewOverlays {
  /**
   * @param {import("../../editor/app/editor.js").Editor} editor
   * @param {{id: number, index: number, bbox: number[], is_gold: boolean}[]} crops
   */
  constructor(editor, crops) {
    this.editor = editor;
    this.crops = crops;
    /** @type {{conflicts: Uint8Array|null, changed: Uint8Array|null, uncertain: Uint8Array|null}} */
    this.masks = { conflicts: null, changed: null, uncertain: null };
    this.visible = { conflicts: false, changed: false, uncertain: false, crops: false };
    /** Crop ids picked for a rejection. */
    this.selected = new Set();
    /** Whether clicks pick crops (reject mode): borders show even when toggled off. */
    this.picking = false;
    this.hoverCropId = null;
    this.boxes = {};
    editor.pixelLayers.push((out, rect) => this.paint(out, rect));
    editor.screenLayers.push((ctx, view) => this.drawScreen(ctx, view));
  }

  /** Pixels per mask plane (one label layer). */
  get planeSize() { return this.editor.width * this.editor.height; }

  /**
   * The mask plane shown now: conflicts of the shown label layer (their
   * array has one plane per feature), or the changed cells (one plane).
   *
   * @param {"conflicts"|"changed"} name
   * @returns {Uint8Array|null}
   */
  plane(name) {
    const mask = this.masks[name];
    if (!mask) return null;
    const n = this.planeSize;
    const planes = mask.length / n;
    const f = PER_FEATURE.has(name) ? Math.min(this.editor.feature, planes - 1) : 0;
    return mask.subarray(f * n, (f + 1) * n);
  }

  /**
   * Store a mask from the server and repaint what it changes.
   *
   * @param {"conflicts"|"changed"} name
   * @param {Uint8Array} data `P * height * width` (P planes: 2 for conflicts, 1 for changed).
   * @throws {RangeError} When the size is not a whole number of planes.
   */
  setMask(name, data) {
    if (!(name in MASK_STYLES)) throw new RangeError(`unknown mask overlay ${name}`);
    const n = this.planeSize;
    if (data.length === 0 || data.length % n !== 0) {
      throw new RangeError(`the ${name} overlay holds ${data.length} values, not a multiple of ${n} (the image's pixels)`);
    }
    const before = this.masks[name];
    this.masks[name] = data;
    this.boxes[name] = null;
    if (!this.visible[name]) return;
    let box = null;
    if (before && before.length === data.length) {
      for (let p = 0; p < data.length / n; p++) {
        box = unionBox(box, diffBox(before.subarray(p * n, (p + 1) * n), data.subarray(p * n, (p + 1) * n), this.editor.width, this.editor.height));
      }
    } else {
      box = this.maskBoxAll(name);
    }
    if (box) this.editor.view.invalidate(growBox(box, 1, this.editor.height, this.editor.width));
  }

  /** Bounding box of every plane of a mask (cached). */
  maskBoxAll(name) {
    if (this.boxes[name] === undefined || this.boxes[name] === null) {
      const mask = this.masks[name];
      const n = this.planeSize;
      let box = null;
      if (mask) for (let p = 0; p < mask.length / n; p++) box = unionBox(box, maskBox(mask.subarray(p * n, (p + 1) * n), this.editor.width, this.editor.height));
      this.boxes[name] = box || false;
    }
    return this.boxes[name] || null;
  }

  /**
   * Show or hide an overlay; repaints only the box its pixels cover.
   *
   * @param {"conflicts"|"changed"|"crops"} name
   * @param {boolean} visible
   */
  setVisible(name, visible) {
    if (!OVERLAYS.includes(name)) throw new RangeError(`unknown overlay ${name}`);
    const next = Boolean(visible);
    if (this.visible[name] === next) return;
    this.visible[name] = next;
    if (name === "crops") {
      this.editor.view.invalidateOverlay();
      return;
    }
    const box = this.maskBoxAll(name);
    if (box) this.editor.view.invalidate(growBox(box, 1, this.editor.height, this.editor.width));
  }

  /** Pixel layer: the visible masks over `rect`. */
  paint(out, rect) {
    const { width, height } = this.editor;
    for (const name of ["uncertain", "changed", "conflicts"]) {
      if (!this.visible[name]) continue;
      const plane = this.plane(name);
      if (plane) paintMask(plane, width, height, out, rect, MASK_STYLES[name]);
    }
  }

  /** Screen layer: crop borders, selection and the crop under the pointer. */
  drawScreen(ctx, view) {
    if (!this.visible.crops && !this.picking && this.selected.size === 0) return;
    drawCropBorders(ctx, view.viewport, view, this.crops, {
      showAll: this.visible.crops || this.picking,
      selected: this.selected,
      hoverId: this.picking ? this.hoverCropId : null,
    });
  }

  /**
   * Note the pixel under the pointer (highlights the crop a click would pick).
   *
   * @param {{y: number, x: number}|null} point Image coordinates, or null.
   */
  hoverAt(point) {
    const crop = point && this.picking ? cropAt(this.crops, point.y, point.x) : null;
    const id = crop ? crop.id : null;
    if (id !== this.hoverCropId) {
      this.hoverCropId = id;
      this.editor.view.invalidateOverlay();
    }
  }

  /**
   * Pick or unpick the crop at an image point for the rejection.
   *
   * @param {number} y Image row (float).
   * @param {number} x Image column (float).
   * @returns {{crop: object, selected: boolean}|null} null when no crop is there.
   * @throws {Error} For a gold crop (its labels are expert labels: fix them here).
   */
  toggleAt(y, x) {
    const crop = cropAt(this.crops, y, x);
    if (!crop) return null;
    if (crop.is_gold) throw new Error(`Crop #${crop.index} is a gold crop with expert labels: fix it here instead of sending it back.`);
    const selected = !this.selected.has(crop.id);
    if (selected) this.selected.add(crop.id);
    else this.selected.delete(crop.id);
    this.editor.view.invalidateOverlay();
    return { crop, selected };
  }

  /** Picked crop ids, ascending. */
  selectedIds() {
    return [...this.selected].sort((a, b) => a - b);
  }

  /**
   * Start or stop picking crops.
   *
   * @param {boolean} on
   */
  setPicking(on) {
    this.picking = Boolean(on);
    if (!this.picking) {
      this.selected.clear();
      this.hoverCropId = null;
    }
    this.editor.view.invalidateOverlay();
  }
}

function unionBox(a, b) {
  if (!a) return b;
  if (!b) return a;
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
}

function growBox([y0, x0, y1, x1], margin, height, width) {
  return [Math.max(0, y0 - margin), Math.max(0, x0 - margin), Math.min(height, y1 + margin), Math.min(width, x1 + margin)];
}
