import test from "node:test";
import assert from "node:assert/strict";

import {
  applyPatch, bboxArea, createLayer, extractPatch, getLabel, growBbox, labelBbox, labelsBbox,
  makeEntry, maxLabelId, newLabelId, setLabel, unionBbox, FEATURES, MAX_LABEL_ID, featureLayers,
} from "../editor/labels.js";
import { grid, rows, seededRandom } from "./layer_grids.js";

test("feature order is whole_cell then nuclear", () => {
  assert.deepEqual([...FEATURES], ["whole_cell", "nuclear"]);
});

test("featureLayers maps a project's feature names to layer indexes", () => {
  assert.deepEqual(featureLayers(["nuclear"]), [1]);
  assert.deepEqual(featureLayers(["nuclear", "whole_cell"]), [0, 1]);
  assert.deepEqual(featureLayers([]), [0, 1]);
  assert.throws(() => featureLayers(["cytoplasm"]), /unknown label feature\(s\) cytoplasm/);
});

test("createLayer makes a zeroed int32 layer and refuses other dtypes or sizes", () => {
  const layer = createLayer(3, 2);
  assert.equal(layer.data.length, 6);
  assert.ok(layer.data instanceof Int32Array);
  assert.ok(layer.data.every((v) => v === 0));
  assert.throws(() => createLayer(2, 2, new Uint16Array(4)), /Int32Array/);
  assert.throws(() => createLayer(2, 2, new Int32Array(5)), /needs 4/);
  assert.throws(() => createLayer(0, 2), /positive integer/);
});

test("get and set address row-major pixels; off-layer reads give -1", () => {
  const layer = createLayer(4, 3);
  setLabel(layer, 2, 1, 9);
  assert.equal(layer.data[2 * 4 + 1], 9);
  assert.equal(getLabel(layer, 2, 1), 9);
  assert.equal(getLabel(layer, 3, 0), -1);
  assert.equal(getLabel(layer, 0, -1), -1);
  assert.throws(() => setLabel(layer, 0, 4, 1), /outside/);
});

test("max id and the next free id, across layers", () => {
  const a = grid(`
    . 3 .
    7 . .`);
  const b = grid(`
    . . 12
    . . .`);
  assert.equal(maxLabelId(a), 7);
  assert.equal(newLabelId(a), 8);
  assert.equal(newLabelId([a, b]), 13);
  assert.equal(newLabelId(createLayer(2, 2)), 1);
  const full = createLayer(1, 1, Int32Array.of(MAX_LABEL_ID));
  assert.throws(() => newLabelId(full), /no free label id/);
});

test("bbox of one label and of several, half-open", () => {
  const layer = grid(`
    . . . . . .
    . . 3 3 . .
    . . . 3 3 .
    5 . . . . .`);
  assert.deepEqual(labelBbox(layer, 3), [1, 2, 3, 5]);
  assert.deepEqual(labelBbox(layer, 5), [3, 0, 4, 1]);
  assert.deepEqual(labelsBbox(layer, [3, 5]), [1, 0, 4, 5]);
  assert.equal(labelBbox(layer, 4), null);
});

test("extractPatch copies the box row-major and applyPatch writes it back", () => {
  const layer = grid(`
    1 2 3 4
    5 6 7 8
    9 10 11 12`);
  const patch = extractPatch(layer, [1, 1, 3, 3]);
  assert.deepEqual([...patch], [6, 7, 10, 11]);
  patch[0] = 0;
  assert.equal(getLabel(layer, 1, 1), 6, "the patch is a copy");
  applyPatch(layer, [0, 2, 2, 4], Int32Array.of(30, 40, 70, 80));
  assert.deepEqual(rows(layer), ["1 2 30 40", "5 6 70 80", "9 10 11 12"]);
  assert.throws(() => extractPatch(layer, [0, 0, 4, 1]), /does not fit/);
  assert.throws(() => applyPatch(layer, [0, 0, 1, 2], Int32Array.of(1)), /covers 2/);
  assert.equal(extractPatch(layer, [1, 1, 1, 3]).length, 0);
});

test("extract then apply is the identity on random boxes", () => {
  const rand = seededRandom(7);
  for (let trial = 0; trial < 50; trial++) {
    const w = 1 + Math.floor(rand() * 12), h = 1 + Math.floor(rand() * 12);
    const layer = createLayer(w, h, Int32Array.from({ length: w * h }, () => Math.floor(rand() * 5)));
    const y0 = Math.floor(rand() * h), x0 = Math.floor(rand() * w);
    const y1 = y0 + Math.floor(rand() * (h - y0 + 1)), x1 = x0 + Math.floor(rand() * (w - x0 + 1));
    const copy = layer.data.slice();
    const patch = extractPatch(layer, [y0, x0, y1, x1]);
    assert.equal(patch.length, bboxArea([y0, x0, y1, x1]));
    layer.data.fill(-1);
    applyPatch(layer, [y0, x0, y1, x1], patch);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const inBox = y >= y0 && y < y1 && x >= x0 && x < x1;
        assert.equal(layer.data[y * w + x], inBox ? copy[y * w + x] : -1);
      }
    }
  }
});

test("makeEntry trims to the pixels that differ, or gives null", () => {
  // 3x4 box at (10, 20); differences at box (0,1) and (2,2).
  const before = Int32Array.of(
    0, 0, 0, 0,
    0, 0, 0, 0,
    0, 0, 0, 0);
  const after = Int32Array.of(
    0, 5, 0, 0,
    0, 0, 0, 0,
    0, 0, 6, 0);
  const entry = makeEntry([10, 20, 13, 24], before, after, 1);
  assert.deepEqual(entry.bbox, [10, 21, 13, 23]);
  assert.deepEqual([...entry.before], [0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...entry.after], [5, 0, 0, 0, 0, 6]);
  assert.equal(entry.feature, 1);
  assert.equal(makeEntry([0, 0, 3, 4], before, before.slice(), 0), null);
});

test("growBbox clips to the image and unionBbox ignores null", () => {
  assert.deepEqual(growBbox([0, 3, 2, 5], 1, 4, 5), [0, 2, 3, 5]);
  assert.deepEqual(unionBbox(null, [1, 1, 2, 2]), [1, 1, 2, 2]);
  assert.deepEqual(unionBbox([0, 4, 1, 5], [2, 1, 3, 2]), [0, 1, 3, 5]);
  assert.equal(unionBbox(null, null), null);
});
