import test from "node:test";
import assert from "node:assert/strict";

import {
  centreAt, clampViewport, fitViewport, imageToScreen, minimapRect, minimapSize, panBy, pixelAt, screenToImage, visibleRect,
  wheelZoomFactor, zoomAt,
} from "../editor/viewport.js";
import { seededRandom } from "./layer_grids.js";

const near = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test("fit centres the whole image at the largest scale that fits", () => {
  assert.deepEqual(fitViewport(100, 50, 200, 200), { scale: 2, offsetX: 0, offsetY: 50 });
  assert.deepEqual(fitViewport(270, 270, 560, 540, { padding: 0 }), { scale: 2, offsetX: 10, offsetY: 0 });
  assert.equal(fitViewport(2, 2, 1000, 1000, { maxScale: 16 }).scale, 16);
  assert.throws(() => fitViewport(0, 5, 10, 10), /must be positive/);
});

test("screen and image transforms are inverse", () => {
  const vp = { scale: 2.5, offsetX: -30, offsetY: 12 };
  assert.deepEqual(imageToScreen(vp, 10, 4), { x: -5, y: 22 });
  assert.deepEqual(screenToImage(vp, -5, 22), { x: 10, y: 4 });
  const rand = seededRandom(11);
  for (let i = 0; i < 100; i++) {
    const v = { scale: 0.1 + rand() * 20, offsetX: rand() * 400 - 200, offsetY: rand() * 400 - 200 };
    const sx = rand() * 800, sy = rand() * 600;
    const p = screenToImage(v, sx, sy);
    const s = imageToScreen(v, p.x, p.y);
    near(s.x, sx, 1e-6); near(s.y, sy, 1e-6);
  }
});

test("pixelAt floors to the pixel under the cursor and is null off the image", () => {
  const vp = { scale: 4, offsetX: 10, offsetY: 20 };
  assert.deepEqual(pixelAt(vp, 10, 20, 5, 5), [0, 0]);
  assert.deepEqual(pixelAt(vp, 13.9, 27.9, 5, 5), [1, 0]);
  assert.deepEqual(pixelAt(vp, 29.9, 39.9, 5, 5), [4, 4]);
  assert.equal(pixelAt(vp, 30, 25, 5, 5), null);
  assert.equal(pixelAt(vp, 9.9, 25, 5, 5), null);
});

test("zooming keeps the image point under the cursor fixed, within limits", () => {
  const rand = seededRandom(5);
  for (let i = 0; i < 100; i++) {
    const vp = { scale: 0.5 + rand() * 4, offsetX: rand() * 100, offsetY: rand() * 100 };
    const sx = rand() * 500, sy = rand() * 500;
    const factor = 0.25 + rand() * 4;
    const before = screenToImage(vp, sx, sy);
    const zoomed = zoomAt(vp, factor, sx, sy, { minScale: 0.01, maxScale: 100 });
    near(zoomed.scale, vp.scale * factor);
    const after = screenToImage(zoomed, sx, sy);
    near(after.x, before.x, 1e-6); near(after.y, before.y, 1e-6);
  }
  const capped = zoomAt({ scale: 30, offsetX: 0, offsetY: 0 }, 10, 100, 100, { maxScale: 32 });
  assert.equal(capped.scale, 32);
  assert.deepEqual(screenToImage(capped, 100, 100), { x: 100 / 30, y: 100 / 30 });
  near(wheelZoomFactor(100) * wheelZoomFactor(-100), 1);
  assert.ok(wheelZoomFactor(-100) > 1);
  assert.throws(() => zoomAt(capped, 0, 0, 0), /positive/);
});

test("pan moves the offset and never mutates its input", () => {
  const vp = Object.freeze({ scale: 2, offsetX: 5, offsetY: 6 });
  assert.deepEqual(panBy(vp, -3, 4), { scale: 2, offsetX: 2, offsetY: 10 });
  assert.deepEqual(vp, { scale: 2, offsetX: 5, offsetY: 6 });
});

test("clamping centres a small image and bounds the empty margin of a large one", () => {
  // Image 100x100 at scale 1 in a 300x50 view: centred in x, bounded in y.
  const clamped = clampViewport({ scale: 1, offsetX: 250, offsetY: 40 }, 100, 100, 300, 50);
  assert.deepEqual(clamped, { scale: 1, offsetX: 100, offsetY: 0 });
  assert.equal(clampViewport({ scale: 1, offsetX: 0, offsetY: -80 }, 100, 100, 300, 50).offsetY, -50);
  assert.equal(clampViewport({ scale: 1, offsetX: 0, offsetY: -80 }, 100, 100, 300, 50, { margin: 10 }).offsetY, -60);
  assert.equal(clampViewport({ scale: 1, offsetX: 0, offsetY: -20 }, 100, 100, 300, 50, { margin: 10 }).offsetY, -20);
});

test("visible rectangle in image pixels", () => {
  assert.deepEqual(visibleRect({ scale: 2, offsetX: -21, offsetY: 0 }, 100, 100, 50, 40), [0, 10, 20, 36]);
  assert.deepEqual(visibleRect({ scale: 1, offsetX: 0, offsetY: 0 }, 10, 10, 500, 500), [0, 0, 10, 10]);
  assert.equal(visibleRect({ scale: 1, offsetX: 600, offsetY: 0 }, 10, 10, 500, 500), null);
});

test("centreAt puts an image point at the view's centre, keeping the zoom", () => {
  const vp = centreAt({ scale: 4, offsetX: 17, offsetY: -3 }, 100, 50, 800, 600);
  assert.equal(vp.scale, 4);
  assert.deepEqual(imageToScreen(vp, 100, 50), { x: 400, y: 300 });
});

test("the minimap fits the image in its box, aspect kept", () => {
  assert.deepEqual(minimapSize(2048, 1024, 160), { width: 160, height: 80, k: 160 / 2048 });
  assert.deepEqual(minimapSize(270, 270, 160), { width: 160, height: 160, k: 160 / 270 });
  assert.equal(minimapSize(1, 5000, 160).width, 1);
  assert.throws(() => minimapSize(0, 10, 160), /must be positive/);
});

test("the minimap's viewport rectangle is the part of the image in view, clipped", () => {
  const k = 0.1; // 1000 px image -> 100 px minimap
  const whole = fitViewport(1000, 1000, 500, 500);
  assert.deepEqual(minimapRect(whole, 1000, 1000, 500, 500, k), { x: 0, y: 0, w: 100, h: 100 });
  const zoomed = { scale: 2, offsetX: -400, offsetY: -1000 }; // view shows x 200..450, y 500..750
  const r = minimapRect(zoomed, 1000, 1000, 500, 500, k);
  for (const [got, want] of [[r.x, 20], [r.y, 50], [r.w, 25], [r.h, 25]]) near(got, want);
  const edge = minimapRect({ scale: 2, offsetX: 100, offsetY: 0 }, 1000, 1000, 500, 500, k); // image starts 50 px in
  near(edge.x, 0); near(edge.w, 20);
  assert.equal(minimapRect({ scale: 1, offsetX: 2000, offsetY: 0 }, 1000, 1000, 500, 500, k), null);
});
