/**
 * Pixel count of every cell of one label layer, kept up to date from the
 * edits' patches (an undo entry's `before` / `after`), so the hover readout
 * ("#12 · 340 px") and the panel's cell count cost nothing per pointer move.
 *
 * @module editor/cell_areas
 */

/** Areas of the cells of one layer. */
export class CellAreas {
  /**
   * @param {{width: number, height: number, data: Int32Array}} layer Counted once, now.
   */
  constructor(layer) {
    /** @type {Map<number, number>} id (> 0) -> pixels; ids with no pixels are absent. */
    this.areas = new Map();
    this.add(layer.data, 1);
  }

  /** Add `sign` per pixel of each id > 0 in `ids` (runs of one id are added at once). */
  add(ids, sign) {
    const n = ids.length;
    let i = 0;
    while (i < n) {
      const id = ids[i];
      let j = i + 1;
      while (j < n && ids[j] === id) j++;
      if (id > 0) {
        const next = (this.areas.get(id) || 0) + sign * (j - i);
        if (next > 0) this.areas.set(id, next);
        else this.areas.delete(id);
      }
      i = j;
    }
  }

  /**
   * Account for one patch written into the layer.
   *
   * @param {Int32Array} removed Ids the patch's pixels held before.
   * @param {Int32Array} written Ids they hold now (same length).
   * @throws {RangeError} When the lengths differ.
   */
  applyPatch(removed, written) {
    if (removed.length !== written.length) {
      throw new RangeError(`a patch needs as many ids before (${removed.length}) as after (${written.length})`);
    }
    this.add(removed, -1);
    this.add(written, 1);
  }

  /**
   * Pixels of a cell.
   *
   * @param {number} id Label id.
   * @returns {number} 0 for background or an id with no pixels.
   */
  area(id) {
    return id > 0 ? this.areas.get(id) || 0 : 0;
  }

  /** Number of cells (ids with at least one pixel). */
  get count() {
    return this.areas.size;
  }
}

/**
 * Areas of every layer of an editor, following its `edit` events.
 *
 * @param {{layers: object[], addEventListener: Function}} editor
 * @returns {{of: (feature: number) => CellAreas}} `of(feature)`: that layer's
 *   areas (counted on first use, then kept up to date).
 */
export function trackCellAreas(editor) {
  let byFeature = [];
  editor.addEventListener("edit", ({ detail: { kind, entry } }) => {
    if (kind === "replace" || !entry) { byFeature = []; return; }
    const areas = byFeature[entry.feature];
    if (!areas) return;
    if (kind === "undo") areas.applyPatch(entry.after, entry.before);
    else areas.applyPatch(entry.before, entry.after);
  });
  return {
    of(feature) {
      if (!byFeature[feature]) byFeature[feature] = new CellAreas(editor.layers[feature]);
      return byFeature[feature];
    },
  };
}
