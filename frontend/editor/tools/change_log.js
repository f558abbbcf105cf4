/**
 * Record of the pixels one edit changed, for tools that change each pixel at
 * most once (brush, eraser, flood fill): it keeps (flat index, old id) pairs
 * instead of a copy of the layer, so a stroke on a 2048² image costs only
 * what it touches.
 *
 * @module editor/tools/change_log
 */

/** Pixels changed by one edit of one layer, and their old ids. */
export class ChangeLog {
  /**
   * @param {{width: number, height: number, data: Int32Array}} layer The
   *   layer being edited.
   * @param {number} feature Index of that layer (0 whole_cell, 1 nuclear).
   */
  constructor(layer, feature = 0) {
    this.layer = layer;
    this.feature = feature;
    this.indices = new Int32Array(256);
    this.oldIds = new Int32Array(256);
    this.length = 0;
    this.y0 = layer.height; this.x0 = layer.width; this.y1 = -1; this.x1 = -1;
  }

  /**
   * Set pixel `index` to `id`, remembering its old id. The caller makes sure
   * the pixel's id differs from `id` and that it was not changed before in
   * this edit.
   *
   * @param {number} index Flat index, `y * width + x`.
   * @param {number} y Row of that pixel.
   * @param {number} x Column of that pixel.
   * @param {number} id New id.
   */
  set(index, y, x, id) {
    if (this.length === this.indices.length) {
      const n = this.length * 2;
      const grownIdx = new Int32Array(n); grownIdx.set(this.indices); this.indices = grownIdx;
      const grownOld = new Int32Array(n); grownOld.set(this.oldIds); this.oldIds = grownOld;
    }
    this.indices[this.length] = index;
    this.oldIds[this.length] = this.layer.data[index];
    this.length++;
    this.layer.data[index] = id;
    if (y < this.y0) this.y0 = y;
    if (y > this.y1) this.y1 = y;
    if (x < this.x0) this.x0 = x;
    if (x > this.x1) this.x1 = x;
  }

  /**
   * The history entry of everything recorded so far.
   *
   * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
   *   bbox `[y0, x0, y1, x1]` is the tight box of the changed pixels;
   *   null when nothing changed.
   */
  toEntry() {
    if (this.length === 0) return null;
    const { width, data } = this.layer;
    const bbox = [this.y0, this.x0, this.y1 + 1, this.x1 + 1];
    const bw = bbox[3] - bbox[1];
    const after = new Int32Array((bbox[2] - bbox[0]) * bw);
    for (let y = bbox[0]; y < bbox[2]; y++) {
      const start = y * width + bbox[1];
      after.set(data.subarray(start, start + bw), (y - bbox[0]) * bw);
    }
    const before = after.slice();
    for (let i = 0; i < this.length; i++) {
      const idx = this.indices[i];
      const y = (idx / width) | 0;
      before[(y - bbox[0]) * bw + (idx - y * width - bbox[1])] = this.oldIds[i];
    }
    return { bbox, before, after, feature: this.feature };
  }
}
