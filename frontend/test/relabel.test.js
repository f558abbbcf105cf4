import test from "node:test";
import assert from "node:assert/strict";

import { deleteLabel, replaceLabel, swapLabels } from "../editor/tools/relabel.js";
import { applyPatch } from "../editor/labels.js";
import { grid, rows } from "./layer_grids.js";

const START = `
  1 1 . . . .
  1 . . 2 2 .
  . . . 2 . .
  . 3 . . . .
  . 3 . . . 1`;

test("replace (merge) turns label b into a everywhere, touching only b's box", () => {
  const layer = grid(START);
  const entry = replaceLabel(layer, 2, 1, { feature: 1 });
  assert.deepEqual(rows(layer), [
    "1 1 . . . .",
    "1 . . 1 1 .",
    ". . . 1 . .",
    ". 3 . . . .",
    ". 3 . . . 1",
  ]);
  assert.deepEqual(entry.bbox, [1, 3, 3, 5]);
  assert.deepEqual([...entry.before], [2, 2, 2, 0]);
  assert.deepEqual([...entry.after], [1, 1, 1, 0]);
  assert.equal(entry.feature, 1);
});

test("swap exchanges two ids within the box of both", () => {
  const layer = grid(START);
  const entry = swapLabels(layer, 1, 3);
  assert.deepEqual(rows(layer), [
    "3 3 . . . .",
    "3 . . 2 2 .",
    ". . . 2 . .",
    ". 1 . . . .",
    ". 1 . . . 3",
  ]);
  assert.deepEqual(entry.bbox, [0, 0, 5, 6]);
  applyPatch(layer, entry.bbox, entry.before);
  assert.deepEqual(rows(layer), rows(grid(START)));
});

test("swap with one absent id renames the other", () => {
  const layer = grid(START);
  const entry = swapLabels(layer, 3, 9);
  assert.deepEqual(entry.bbox, [3, 1, 5, 2]);
  assert.deepEqual(rows(layer).slice(3), [". 9 . . . .", ". 9 . . . 1"]);
});

test("delete sets the label to background", () => {
  const layer = grid(START);
  const entry = deleteLabel(layer, 1);
  assert.deepEqual(rows(layer), [
    ". . . . . .",
    ". . . 2 2 .",
    ". . . 2 . .",
    ". 3 . . . .",
    ". 3 . . . .",
  ]);
  assert.deepEqual(entry.bbox, [0, 0, 5, 6]);
});

test("no entry when nothing would change; invalid ids are refused", () => {
  const layer = grid(START);
  assert.equal(replaceLabel(layer, 7, 1), null);
  assert.equal(replaceLabel(layer, 2, 2), null);
  assert.equal(swapLabels(layer, 7, 8), null);
  assert.equal(swapLabels(layer, 2, 2), null);
  assert.equal(deleteLabel(layer, 8), null);
  assert.deepEqual(rows(layer), rows(grid(START)));
  assert.throws(() => replaceLabel(layer, 0, 2), /label to replace must be a positive integer/);
  assert.throws(() => swapLabels(layer, 1, 1.5), /second label to swap/);
});
