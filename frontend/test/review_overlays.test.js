import test from "node:test";
import assert from "node:assert/strict";

import { MASK_STYLES, ReviewOverlays } from "../pages/review/overlays.js";

const GRID = [ // 2x2 crops of 10 px with 4 px overlap, on a 16x16 image
  { id: 11, index: 0, bbox: [0, 0, 10, 10], is_gold: false },
  { id: 12, index: 1, bbox: [0, 6, 10, 16], is_gold: true },
  { id: 13, index: 2, bbox: [6, 0, 16, 10], is_gold: false },
  { id: 14, index: 3, bbox: [6, 6, 16, 16], is_gold: false },
];

/** The parts of an Editor the overlays use. */
function fakeEditor(width, height) {
  const invalidated = [];
  let overlayRedraws = 0;
  return {
    width, height, feature: 0, pixelLayers: [], screenLayers: [], invalidated,
    get overlayRedraws() { return overlayRedraws; },
    view: {
      invalidate: (rect) => invalidated.push(rect),
      invalidateOverlay: () => { overlayRedraws++; },
    },
  };
}

test("ReviewOverlays: a switch repaints only the box the mask covers; hidden masks paint nothing", () => {
  const ed = fakeEditor(8, 6);
  const ov = new ReviewOverlays(ed, GRID);
  assert.equal(ed.pixelLayers.length, 1);
  assert.equal(ed.screenLayers.length, 1);
  const conflicts = new Uint8Array(2 * 6 * 8);
  conflicts[2 * 8 + 3] = 1; // feature 0: pixel (2, 3)
  conflicts[48 + 5 * 8 + 7] = 1; // feature 1: pixel (5, 7)
  ov.setMask("conflicts", conflicts);
  assert.deepEqual(ed.invalidated, [], "hidden: loading a mask repaints nothing");
  ov.setVisible("conflicts", true);
  assert.deepEqual(ed.invalidated, [[1, 2, 6, 8]], "both planes' box, grown by one pixel");
  ov.setVisible("conflicts", true);
  assert.equal(ed.invalidated.length, 1, "no change, no repaint");

  const out = new Uint8ClampedArray(6 * 8 * 4);
  ed.pixelLayers[0](out, [0, 0, 6, 8]);
  const lit = [];
  for (let i = 0; i < 48; i++) if (out[i * 4] !== 0) lit.push(i);
  assert.deepEqual(lit, [2 * 8 + 3], "feature 0 shows its own plane");
  ed.feature = 1;
  out.fill(0);
  ed.pixelLayers[0](out, [0, 0, 6, 8]);
  assert.equal(out[(5 * 8 + 7) * 4], MASK_STYLES.conflicts.colour[0]);
  assert.equal(out[(2 * 8 + 3) * 4], 0);
  ov.setVisible("conflicts", false);
  out.fill(0);
  ed.pixelLayers[0](out, [0, 0, 6, 8]);
  assert.ok(out.every((v) => v === 0));
  assert.throws(() => ov.setMask("conflicts", new Uint8Array(47)), /multiple of 48/);
  assert.throws(() => ov.setVisible("nuclei", true), /unknown overlay/);
});

test("ReviewOverlays: a new changed-cells mask repaints where it differs from the old one", () => {
  const ed = fakeEditor(10, 10);
  const ov = new ReviewOverlays(ed, GRID);
  const first = new Uint8Array(100);
  first[0] = 1;
  ov.setMask("changed", first);
  ov.setVisible("changed", true);
  ed.invalidated.length = 0;
  const next = first.slice();
  next[5 * 10 + 6] = 1;
  ov.setMask("changed", next);
  assert.deepEqual(ed.invalidated, [[4, 5, 7, 8]]);
  ov.setMask("changed", next.slice());
  assert.equal(ed.invalidated.length, 1, "same pixels: nothing to repaint");
});

test("ReviewOverlays: picking crops toggles them, refuses gold ones and forgets them when closed", () => {
  const ed = fakeEditor(16, 16);
  const ov = new ReviewOverlays(ed, GRID);
  ov.setPicking(true);
  assert.equal(ov.toggleAt(12, 12).selected, true);
  assert.equal(ov.toggleAt(2, 2).selected, true);
  assert.deepEqual(ov.selectedIds(), [11, 14]);
  assert.equal(ov.toggleAt(13, 13).selected, false);
  assert.deepEqual(ov.selectedIds(), [11]);
  assert.throws(() => ov.toggleAt(2, 13), /gold crop/);
  assert.equal(ov.toggleAt(20, 20), null);
  ov.hoverAt({ y: 12, x: 2 });
  assert.equal(ov.hoverCropId, 13);
  ov.setPicking(false);
  assert.deepEqual(ov.selectedIds(), []);
  assert.equal(ov.hoverCropId, null);
  ov.hoverAt({ y: 12, x: 2 });
  assert.equal(ov.hoverCropId, null, "no hover highlight unless picking");
});

test("ReviewOverlays: the model-unsure mask has a plane per label layer, drawn under the others", () => {
  const ed = fakeEditor(4, 2);
  const ov = new ReviewOverlays(ed, GRID);
  const unsure = new Uint8Array(2 * 8);
  unsure[1] = 1; // whole-cell: pixel (0, 1)
  unsure[8 + 6] = 1; // nuclear: pixel (1, 2)
  ov.setMask("uncertain", unsure);
  ov.setVisible("uncertain", true);
  const out = new Uint8ClampedArray(8 * 4);
  ed.pixelLayers[0](out, [0, 0, 2, 4]);
  assert.ok(out[1 * 4 + 1] > 100 && out[1 * 4] === 0, "cyan on the whole-cell plane's pixel");
  assert.equal(out[6 * 4 + 1], 0);
  ed.feature = 1;
  out.fill(0);
  ed.pixelLayers[0](out, [0, 0, 2, 4]);
  assert.ok(out[6 * 4 + 1] > 100, "the nuclear plane's pixel");
  assert.equal(out[1 * 4 + 1], 0);
  const conflicts = new Uint8Array(2 * 8);
  conflicts[8 + 6] = 1;
  ov.setMask("conflicts", conflicts);
  ov.setVisible("conflicts", true);
  out.fill(0);
  ed.pixelLayers[0](out, [0, 0, 2, 4]);
  assert.ok(out[6 * 4] > 200, "conflicts (orange) are painted over it");
});
