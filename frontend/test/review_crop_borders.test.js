import test from "node:test";
import assert from "node:assert/strict";

import { cropAt, cropScreenRect, drawCropBorders } from "../pages/review/crop_borders.js";
import { seededRandom } from "./layer_grids.js";

const GRID = [ // 2x2 crops of 10 px with 4 px overlap, on a 16x16 image
  { id: 11, index: 0, bbox: [0, 0, 10, 10], is_gold: false },
  { id: 12, index: 1, bbox: [0, 6, 10, 16], is_gold: true },
  { id: 13, index: 2, bbox: [6, 0, 16, 10], is_gold: false },
  { id: 14, index: 3, bbox: [6, 6, 16, 16], is_gold: false },
];

test("cropAt: in an overlap the crop with the nearest centre; outside every crop none", () => {
  assert.equal(cropAt(GRID, 2, 2).id, 11);
  assert.equal(cropAt(GRID, 9, 9).id, 14, "inside all four crops, nearest to crop 3's centre (11, 11)");
  assert.equal(cropAt(GRID, 7.9, 7.9).id, 11, "just before the middle (8, 8): crop 0");
  assert.equal(cropAt(GRID, 8.1, 8.1).id, 14, "just after it: crop 3");
  assert.equal(cropAt(GRID, 2, 7).id, 11, "x 7 lies nearer crop 0's centre (5) than crop 1's (11)");
  assert.equal(cropAt(GRID, 2, 9).id, 12);
  assert.equal(cropAt(GRID, 16, 3), null);
  assert.equal(cropAt(GRID, -0.5, 3), null);
  assert.equal(cropAt([], 1, 1), null);
});

test("cropAt: the answer contains the point and no containing crop is nearer (property)", () => {
  const random = seededRandom(21);
  for (let trial = 0; trial < 300; trial++) {
    const y = random() * 18 - 1, x = random() * 18 - 1;
    const hit = cropAt(GRID, y, x);
    const containing = GRID.filter(({ bbox: [y0, x0, y1, x1] }) => y >= y0 && y < y1 && x >= x0 && x < x1);
    if (containing.length === 0) { assert.equal(hit, null); continue; }
    assert.ok(containing.includes(hit));
    const d = ({ bbox: [y0, x0, y1, x1] }) => (y - (y0 + y1) / 2) ** 2 + (x - (x0 + x1) / 2) ** 2;
    for (const c of containing) assert.ok(d(hit) <= d(c));
  }
});

test("cropScreenRect: half-pixel aligned lines inside the crop's screen area", () => {
  assert.deepEqual(cropScreenRect([0, 0, 10, 20], { scale: 2, offsetX: 5, offsetY: 7 }), { x: 5.5, y: 7.5, w: 39, h: 19 });
  assert.deepEqual(cropScreenRect([3, 3, 3, 3], { scale: 1, offsetX: 0, offsetY: 0 }).w, 0);
});

/** A 2D context that records what is drawn. */
function recordingContext() {
  const calls = [];
  const ctx = { calls, font: "", textBaseline: "", fillStyle: "", strokeStyle: "", lineWidth: 1 };
  for (const name of ["save", "restore", "fillRect", "strokeRect", "setLineDash", "fillText"]) {
    ctx[name] = (...args) => calls.push([name, ...args]);
  }
  ctx.measureText = (text) => ({ width: text.length * 6 });
  return ctx;
}

test("drawCropBorders: every crop in view; only picked and hovered ones when borders are off", () => {
  const vp = { scale: 10, offsetX: 0, offsetY: 0 };
  const all = recordingContext();
  drawCropBorders(all, vp, { viewW: 1000, viewH: 1000 }, GRID);
  assert.equal(all.calls.filter((c) => c[0] === "strokeRect").length, 4);
  const tags = all.calls.filter((c) => c[0] === "fillText").map((c) => c[1]);
  assert.deepEqual(tags, ["#0", "#1 gold", "#2", "#3"]);

  const offscreen = recordingContext();
  drawCropBorders(offscreen, { scale: 10, offsetX: -120, offsetY: 0 }, { viewW: 30, viewH: 1000 }, GRID);
  assert.equal(offscreen.calls.filter((c) => c[0] === "strokeRect").length, 2, "crops left of the view are skipped");

  const picked = recordingContext();
  drawCropBorders(picked, vp, { viewW: 1000, viewH: 1000 }, GRID, { showAll: false, selected: new Set([13]), hoverId: 14 });
  assert.equal(picked.calls.filter((c) => c[0] === "strokeRect").length, 2);
  assert.equal(picked.calls.filter((c) => c[0] === "fillRect").length, 2 + 2, "two fills, two tag backgrounds");
});

test("drawCropBorders: a crop that skipped the crowd says so", () => {
  const crops = GRID.map((c) => (c.index === 2 ? { ...c, source: "model" } : c));
  const ctx = recordingContext();
  drawCropBorders(ctx, { scale: 10, offsetX: 0, offsetY: 0 }, { viewW: 1000, viewH: 1000 }, crops);
  const tags = ctx.calls.filter((c) => c[0] === "fillText").map((c) => c[1]);
  assert.deepEqual(tags, ["#0", "#1 gold", "#2 model, unchecked", "#3"]);
});
