import test from "node:test";
import assert from "node:assert/strict";

import { BrushStroke, discHalfWidths, eraseStroke, linePixels, paintStroke } from "../editor/tools/brush.js";
import { applyPatch, createLayer, extractPatch } from "../editor/labels.js";
import { cloneLayer, grid, rows, seededRandom } from "./layer_grids.js";

test("disc half widths: radius 0 is a pixel, 1 a plus, 1.5 a 3x3 square, 2 a diamond-ish disc", () => {
  assert.deepEqual([...discHalfWidths(0)], [0]);
  assert.deepEqual([...discHalfWidths(1)], [0, 1, 0]);
  assert.deepEqual([...discHalfWidths(1.5)], [1, 1, 1]);
  assert.deepEqual([...discHalfWidths(2)], [0, 1, 2, 1, 0]);
  // radius 3: rows |dy|=3 -> 0, 2 -> floor(sqrt 5)=2, 1 -> floor(sqrt 8)=2, 0 -> 3
  assert.deepEqual([...discHalfWidths(3)], [0, 2, 2, 3, 2, 2, 0]);
});

test("a single click stamps one disc and records one entry", () => {
  const layer = createLayer(6, 6);
  const entry = paintStroke(layer, [[3, 3]], { label: 4, radius: 1, feature: 1 });
  assert.deepEqual(rows(layer), [
    ". . . . . .",
    ". . . . . .",
    ". . . 4 . .",
    ". . 4 4 4 .",
    ". . . 4 . .",
    ". . . . . .",
  ]);
  assert.deepEqual(entry.bbox, [2, 2, 5, 5]);
  assert.deepEqual([...entry.before], [0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...entry.after], [0, 4, 0, 4, 4, 4, 0, 4, 0]);
  assert.equal(entry.feature, 1);
});

test("radius 2 disc, clipped at the image corner", () => {
  const layer = createLayer(5, 5);
  paintStroke(layer, [[2, 2]], { label: 1, radius: 2 });
  assert.deepEqual(rows(layer), [
    ". . 1 . .",
    ". 1 1 1 .",
    "1 1 1 1 1",
    ". 1 1 1 .",
    ". . 1 . .",
  ]);
  const corner = createLayer(4, 4);
  const entry = paintStroke(corner, [[0, 0]], { label: 2, radius: 2 });
  assert.deepEqual(rows(corner), [
    "2 2 2 .",
    "2 2 . .",
    "2 . . .",
    ". . . .",
  ]);
  assert.deepEqual(entry.bbox, [0, 0, 3, 3]);
});

test("a fast pointer jump is interpolated: the 1-px line has no gaps", () => {
  const layer = createLayer(8, 4);
  paintStroke(layer, [[0, 0], [3, 7]], { label: 1, radius: 0 });
  assert.deepEqual(rows(layer), [
    "1 1 . . . . . .",
    ". . 1 1 . . . .",
    ". . . . 1 1 . .",
    ". . . . . . 1 1",
  ]);
  assert.deepEqual(linePixels(0, 0, 3, 7), [[0, 1], [1, 2], [1, 3], [2, 4], [2, 5], [3, 6], [3, 7]]);
  assert.deepEqual(linePixels(2, 2, 2, 2), []);
});

function isFourConnected(layer, label) {
  const { width, height, data } = layer;
  const start = data.indexOf(label);
  if (start < 0) return true;
  const seen = new Uint8Array(data.length);
  const queue = [start];
  seen[start] = 1;
  let count = 0;
  while (queue.length) {
    const i = queue.pop();
    count++;
    const y = Math.floor(i / width), x = i % width;
    for (const [ny, nx] of [[y - 1, x], [y + 1, x], [y, x - 1], [y, x + 1]]) {
      if (ny < 0 || nx < 0 || ny >= height || nx >= width) continue;
      const j = ny * width + nx;
      if (!seen[j] && data[j] === label) { seen[j] = 1; queue.push(j); }
    }
  }
  return count === data.filter((v) => v === label).length;
}

test("random fast strokes equal discs at every interpolated pixel and stay 4-connected", () => {
  const rand = seededRandom(42);
  for (let trial = 0; trial < 40; trial++) {
    const size = 40;
    const radius = 1 + Math.floor(rand() * 3);
    const points = Array.from({ length: 2 + Math.floor(rand() * 5) }, () => [rand() * 39, rand() * 39]);
    const layer = createLayer(size, size);
    const entry = paintStroke(layer, points, { label: 3, radius });

    // Reference: every pixel within `radius` of a centre on the joined lines.
    const expected = createLayer(size, size);
    const rounded = points.map(([y, x]) => [Math.round(y), Math.round(x)]);
    const centres = [rounded[0]];
    for (let i = 1; i < rounded.length; i++) centres.push(...linePixels(...rounded[i - 1], ...rounded[i]));
    for (const [cy, cx] of centres) {
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          if ((y - cy) ** 2 + (x - cx) ** 2 <= radius * radius) expected.data[y * size + x] = 3;
        }
      }
    }
    assert.deepEqual(rows(layer), rows(expected), `trial ${trial}`);
    assert.ok(isFourConnected(layer, 3), `trial ${trial}: stroke has a gap`);
    // The entry's box is exactly the painted pixels' box and undoes the stroke.
    applyPatch(layer, entry.bbox, entry.before);
    assert.ok(layer.data.every((v) => v === 0));
  }
});

test("paint over background only leaves other labels alone", () => {
  const start = grid(`
    . . . . .
    . . . . .
    . . 5 5 .
    . . . . .
    . . . . .`);
  const guarded = cloneLayer(start);
  const entry = paintStroke(guarded, [[2, 2]], { label: 1, radius: 1, overBackgroundOnly: true });
  assert.deepEqual(rows(guarded), [
    ". . . . .",
    ". . 1 . .",
    ". 1 5 5 .",
    ". . 1 . .",
    ". . . . .",
  ]);
  assert.deepEqual(entry.bbox, [1, 1, 4, 3]);
  const free = cloneLayer(start);
  paintStroke(free, [[2, 2]], { label: 1, radius: 1 });
  assert.deepEqual(rows(free), [
    ". . . . .",
    ". . 1 . .",
    ". 1 1 1 .",
    ". . 1 . .",
    ". . . . .",
  ]);
});

test("the eraser clears every label, or only the selected one", () => {
  const start = grid(`
    1 1 2 2
    1 1 2 2
    1 1 2 2`);
  const all = cloneLayer(start);
  const entry = eraseStroke(all, [[1, 1], [1, 2]], { radius: 0 });
  assert.deepEqual(rows(all), ["1 1 2 2", "1 . . 2", "1 1 2 2"]);
  assert.deepEqual(entry.bbox, [1, 1, 2, 3]);
  assert.deepEqual([...entry.before], [1, 2]);
  assert.deepEqual([...entry.after], [0, 0]);

  const only = cloneLayer(start);
  eraseStroke(only, [[0, 1], [2, 1]], { radius: 1, onlyLabel: 2 });
  assert.deepEqual(rows(only), ["1 1 . 2", "1 1 . 2", "1 1 . 2"]);
});

test("a stroke counts the pixels its mode protected, and none in overwrite mode", () => {
  const start = grid(`
    . . 5 5
    . . 5 5
    . . . .`);
  const safe = new BrushStroke(cloneLayer(start), { label: 1, radius: 0, overBackgroundOnly: true });
  safe.addPoint(0, 2);
  assert.equal(safe.finish(), null, "a safe stroke on another cell changes nothing");
  assert.ok(safe.blocked > 0);
  const free = new BrushStroke(cloneLayer(start), { label: 1, radius: 0 });
  free.addPoint(0, 2);
  assert.ok(free.finish() !== null && free.blocked === 0);
  const eraser = new BrushStroke(cloneLayer(start), { radius: 0, erase: true, onlyLabel: 9 });
  eraser.addPoint(2, 0);
  assert.equal(eraser.blocked, 0, "background under a safe eraser is not protected, just empty");
  eraser.addPoint(1, 3);
  assert.ok(eraser.blocked > 0 && eraser.finish() === null);
});

test("a stroke that changes nothing gives no entry", () => {
  const layer = grid(`
    7 7
    7 7`);
  assert.equal(paintStroke(layer, [[0, 0], [1, 1]], { label: 7, radius: 1 }), null);
  assert.equal(eraseStroke(createLayer(3, 3), [[1, 1]], { radius: 1 }), null);
});

test("incremental strokes report per-move dirty rectangles and one entry", () => {
  const layer = createLayer(10, 10);
  const stroke = new BrushStroke(layer, { label: 2, radius: 1 });
  assert.deepEqual(stroke.addPoint(1, 1), [0, 0, 3, 3]);
  assert.deepEqual(stroke.addPoint(1, 4), [0, 2, 3, 6]);
  assert.equal(stroke.addPoint(1, 4), null, "repeating a point changes nothing");
  assert.equal(stroke.addPoint(-20, -20), null, "far off the image nothing changes");
  const entry = stroke.finish();
  assert.ok(entry.bbox[0] === 0 && entry.bbox[1] === 0);
  assert.deepEqual(extractPatch(layer, entry.bbox), entry.after);
  assert.throws(() => stroke.addPoint(2, 2), /finished/);
});

test("points are rounded and off-image parts are clipped", () => {
  const layer = createLayer(4, 3);
  paintStroke(layer, [[1.4, -5], [1.4, 10]], { label: 1, radius: 0 });
  assert.deepEqual(rows(layer), [". . . .", "1 1 1 1", ". . . ."]);
});

test("bad options are refused with a message", () => {
  const layer = createLayer(4, 4);
  assert.throws(() => paintStroke(layer, [[0, 0]], { radius: 1 }), /brush label must be a positive integer/);
  assert.throws(() => paintStroke(layer, [[0, 0]], { label: 0, radius: 1 }), /positive integer/);
  assert.throws(() => paintStroke(layer, [[0, 0]], { label: 1, radius: -1 }), /radius/);
  assert.throws(() => paintStroke(layer, [[0, NaN]], { label: 1 }), /not a number/);
});
