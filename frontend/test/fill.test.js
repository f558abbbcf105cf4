import test from "node:test";
import assert from "node:assert/strict";

import { floodFill } from "../editor/tools/fill.js";
import { applyPatch, createLayer, newLabelId } from "../editor/labels.js";
import { cloneLayer, grid, rows, seededRandom } from "./layer_grids.js";

const RING = `
  . . . . . .
  . 1 1 1 . .
  . 1 . . 1 .
  . 1 . . 1 .
  . . 1 1 . .
  . . . . . .`;

test("filling enclosed background stays inside a ring that is closed only diagonally-tight", () => {
  const layer = grid(RING);
  const entry = floodFill(layer, 2, 2, { label: 2 });
  assert.deepEqual(rows(layer), [
    ". . . . . .",
    ". 1 1 1 . .",
    ". 1 2 2 1 .",
    ". 1 2 2 1 .",
    ". . 1 1 . .",
    ". . . . . .",
  ]);
  assert.deepEqual(entry.bbox, [2, 2, 4, 4]);
  assert.deepEqual([...entry.before], [0, 0, 0, 0]);
  assert.deepEqual([...entry.after], [2, 2, 2, 2]);
  assert.equal(entry.feature, 0);
});

test("filling the outside background leaves the enclosed background alone", () => {
  const layer = grid(RING);
  const entry = floodFill(layer, 0, 0, { label: 3, feature: 1 });
  assert.deepEqual(rows(layer), [
    "3 3 3 3 3 3",
    "3 1 1 1 3 3",
    "3 1 . . 1 3",
    "3 1 . . 1 3",
    "3 3 1 1 3 3",
    "3 3 3 3 3 3",
  ]);
  assert.deepEqual(entry.bbox, [0, 0, 6, 6]);
  assert.equal(entry.feature, 1);
  applyPatch(layer, entry.bbox, entry.before);
  assert.deepEqual(rows(layer), rows(grid(RING)));
});

test("filling a label relabels only the clicked connected piece (split with a new id)", () => {
  const layer = grid(`
    4 4 . 4
    4 . . 4
    . . 4 4`);
  const id = newLabelId(layer);
  assert.equal(id, 5);
  const entry = floodFill(layer, 2, 3, { label: id });
  assert.deepEqual(rows(layer), ["4 4 . 5", "4 . . 5", ". . 5 5"]);
  assert.deepEqual(entry.bbox, [0, 2, 3, 4]);
  assert.deepEqual([...entry.before], [0, 4, 0, 4, 4, 4]);
  assert.deepEqual([...entry.after], [0, 5, 0, 5, 5, 5]);
});

test("no entry when the region already has the label or the click is off the layer", () => {
  const layer = grid(`
    1 1
    . .`);
  assert.equal(floodFill(layer, 0, 0, { label: 1 }), null);
  assert.equal(floodFill(layer, 5, 0, { label: 2 }), null);
  assert.deepEqual(rows(layer), ["1 1", ". ."]);
  assert.throws(() => floodFill(layer, 1, 1, { label: -3 }), /fill label must be a positive integer/);
});

function referenceFill(layer, y, x, label) {
  const { width, height, data } = layer;
  const target = data[y * width + x];
  const queue = [[y, x]];
  const seen = new Set([y * width + x]);
  while (queue.length) {
    const [cy, cx] = queue.shift();
    data[cy * width + cx] = label;
    for (const [ny, nx] of [[cy - 1, cx], [cy + 1, cx], [cy, cx - 1], [cy, cx + 1]]) {
      const j = ny * width + nx;
      if (ny >= 0 && nx >= 0 && ny < height && nx < width && !seen.has(j) && data[j] === target) {
        seen.add(j);
        queue.push([ny, nx]);
      }
    }
  }
}

test("scanline fill matches a plain breadth-first fill on random mazes", () => {
  const rand = seededRandom(3);
  for (let trial = 0; trial < 60; trial++) {
    const w = 5 + Math.floor(rand() * 40), h = 5 + Math.floor(rand() * 40);
    const layer = createLayer(w, h, Int32Array.from({ length: w * h }, () => (rand() < 0.35 ? 1 + Math.floor(rand() * 2) : 0)));
    const y = Math.floor(rand() * h), x = Math.floor(rand() * w);
    const original = cloneLayer(layer);
    const expected = cloneLayer(layer);
    referenceFill(expected, y, x, 9);
    const entry = floodFill(layer, y, x, { label: 9 });
    assert.deepEqual(rows(layer), rows(expected), `trial ${trial}`);
    applyPatch(layer, entry.bbox, entry.before);
    assert.deepEqual(layer.data, original.data);
  }
});
