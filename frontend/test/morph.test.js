import test from "node:test";
import assert from "node:assert/strict";

import { growLabel, shrinkLabel } from "../editor/tools/morph.js";
import { applyPatch } from "../editor/labels.js";
import { grid, rows } from "./layer_grids.js";

test("grow adds the 4-neighbours of the label on background only", () => {
  const layer = grid(`
    . . . . . .
    . . . . . .
    . . 1 1 2 .
    . . 1 1 . .
    . . . . . .
    . . . . . .`);
  const entry = growLabel(layer, 1, { feature: 1 });
  assert.deepEqual(rows(layer), [
    ". . . . . .",
    ". . 1 1 . .",
    ". 1 1 1 2 .",
    ". 1 1 1 1 .",
    ". . 1 1 . .",
    ". . . . . .",
  ]);
  assert.deepEqual(entry.bbox, [1, 1, 5, 5]);
  assert.equal(entry.feature, 1);
});

test("shrink removes the label's pixels that touch another id", () => {
  const original = `
    . . . . .
    . 1 1 1 .
    . 1 1 1 .
    . 1 1 1 .
    . . . . .`;
  const layer = grid(original);
  const entry = shrinkLabel(layer, 1);
  assert.deepEqual(rows(layer), [". . . . .", ". . . . .", ". . 1 . .", ". . . . .", ". . . . ."]);
  assert.deepEqual(entry.bbox, [1, 1, 4, 4]);
  applyPatch(layer, entry.bbox, entry.before);
  assert.deepEqual(rows(layer), rows(grid(original)));
});

test("the image edge neither erodes a cell nor lets it grow off the image", () => {
  const corner = grid(`
    1 1 1 .
    1 1 1 .
    1 1 1 .
    . . . .`);
  shrinkLabel(corner, 1);
  assert.deepEqual(rows(corner), ["1 1 . .", "1 1 . .", ". . . .", ". . . ."]);
  growLabel(corner, 1);
  assert.deepEqual(rows(corner), ["1 1 1 .", "1 1 1 .", "1 1 . .", ". . . ."]);
});

test("shrink next to another label erodes toward it, not into it", () => {
  const layer = grid(`
    2 2 2 2
    1 1 1 1
    1 1 1 1`);
  shrinkLabel(layer, 1);
  assert.deepEqual(rows(layer), ["2 2 2 2", ". . . .", "1 1 1 1"]);
});

test("no entry for an absent label or one that cannot grow", () => {
  const layer = grid(`
    1 2
    2 2`);
  assert.equal(growLabel(layer, 5), null);
  assert.equal(shrinkLabel(layer, 5), null);
  assert.equal(growLabel(layer, 1), null);
  assert.throws(() => growLabel(layer, 0), /label to grow must be a positive integer/);
});
