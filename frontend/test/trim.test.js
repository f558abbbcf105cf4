import test from "node:test";
import assert from "node:assert/strict";

import { trimLabel } from "../editor/tools/trim.js";
import { applyPatch } from "../editor/labels.js";
import { cloneLayer, grid, rows } from "./layer_grids.js";

const PIECES = `
  1 1 . . . .
  1 1 . 2 . .
  . . . 2 1 .
  . . . . 1 1
  . . 1 . . .`;

test("trim keeps the clicked piece and erases the label's other pieces only", () => {
  const layer = grid(PIECES);
  const entry = trimLabel(layer, 0, 0, { feature: 1 });
  assert.deepEqual(rows(layer), [
    "1 1 . . . .",
    "1 1 . 2 . .",
    ". . . 2 . .",
    ". . . . . .",
    ". . . . . .",
  ]);
  // Erased pixels: (2,4), (3,4), (3,5), (4,2) -> tight box rows 2..4, cols 2..5.
  assert.deepEqual(entry.bbox, [2, 2, 5, 6]);
  assert.equal(entry.feature, 1);
  applyPatch(layer, entry.bbox, entry.before);
  assert.deepEqual(rows(layer), rows(grid(PIECES)));
});

test("trim from another piece keeps that one", () => {
  const layer = grid(PIECES);
  trimLabel(layer, 3, 5);
  assert.deepEqual(rows(layer), [
    ". . . . . .",
    ". . . 2 . .",
    ". . . 2 1 .",
    ". . . . 1 1",
    ". . . . . .",
  ]);
});

test("diagonal contact splits pieces with connectivity 4 but not 8", () => {
  const start = grid(`
    3 . .
    . 3 3
    . . .`);
  const four = cloneLayer(start);
  trimLabel(four, 1, 1);
  assert.deepEqual(rows(four), [". . .", ". 3 3", ". . ."]);
  const eight = cloneLayer(start);
  assert.equal(trimLabel(eight, 1, 1, { connectivity: 8 }), null);
  assert.deepEqual(rows(eight), rows(start));
  assert.throws(() => trimLabel(eight, 1, 1, { connectivity: 6 }), /4 or 8/);
});

test("no entry for background, off-layer clicks or a one-piece label", () => {
  const layer = grid(PIECES);
  assert.equal(trimLabel(layer, 0, 3), null);
  assert.equal(trimLabel(layer, -1, 0), null);
  assert.equal(trimLabel(layer, 1, 3), null);
  assert.deepEqual(rows(layer), rows(grid(PIECES)));
});
