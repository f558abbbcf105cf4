import test from "node:test";
import assert from "node:assert/strict";

import { MIN_PIECE_PX, cellUnderStroke, splitAlongLine, strokePixels } from "../editor/tools/line_split.js";
import { applyPatch, createLayer } from "../editor/labels.js";
import { cloneLayer, grid, rows } from "./layer_grids.js";

// Two cells under one id (5) beside a neighbour (2); the true boundary is between columns 3 and 4.
const MERGED = `
  . . . . . . . . . .
  . 5 5 5 5 5 5 5 . 2
  . 5 5 5 5 5 5 5 . 2
  . 5 5 5 5 5 5 5 . 2
  . 5 5 5 5 5 5 5 . 2
  . . . . . . . . . 2`;

test("a vertical line across the cell cuts it in two; the line goes to the larger piece", () => {
  const layer = grid(MERGED);
  const entry = splitAlongLine(layer, [[0, 4], [5, 4]], { label: 5, nextId: 9, minPiece: 1, feature: 1 });
  assert.deepEqual(rows(layer), [
    ". . . . . . . . . .",
    ". 5 5 5 5 9 9 9 . 2",
    ". 5 5 5 5 9 9 9 . 2",
    ". 5 5 5 5 9 9 9 . 2",
    ". 5 5 5 5 9 9 9 . 2",
    ". . . . . . . . . 2",
  ]);
  assert.deepEqual(entry.bbox, [1, 5, 5, 8]);
  assert.equal(entry.feature, 1);
  applyPatch(layer, entry.bbox, entry.before);
  assert.deepEqual(rows(layer), rows(grid(MERGED)), "the entry undoes the cut");
});

test("a diagonal line is a clean boundary: no pixel of the cell is lost", () => {
  // Cell 3 fills rows 1-10, columns 1-11; the line runs through (y, y + 1).
  const layer = createLayer(12, 12, new Int32Array(144).fill(3));
  for (let i = 0; i < 12; i++) { layer.data[i] = 0; layer.data[132 + i] = 0; layer.data[i * 12] = 0; }
  const entry = splitAlongLine(layer, [[0, 1], [11, 12]], { label: 3, nextId: 4, minPiece: 1 });
  assert.ok(entry);
  for (let y = 1; y < 11; y++) {
    for (let x = 1; x < 12; x++) {
      // Below-left (55 px, the larger piece) keeps 3 and takes the line; above-right (45 px) becomes 4.
      assert.equal(layer.data[y * 12 + x], x > y + 1 ? 4 : 3, `pixel (${y}, ${x})`);
    }
  }
});

test("a line that stops inside the cell cuts nothing and changes nothing", () => {
  const layer = grid(MERGED);
  assert.equal(splitAlongLine(layer, [[0, 4], [3, 4]], { label: 5, nextId: 9, minPiece: 1 }), null);
  assert.deepEqual(rows(layer), rows(grid(MERGED)));
  assert.equal(splitAlongLine(layer, [[2, 2]], { label: 5, nextId: 9, minPiece: 1 }), null, "a click");
  assert.equal(splitAlongLine(layer, [[0, 9], [5, 9]], { label: 7, nextId: 9 }), null, "an absent id");
});

test("crumbs smaller than the smallest piece join a neighbouring piece, never become cells", () => {
  // The line clips the corner pixel (1, 1) off the cell on its way to column 4.
  const layer = grid(MERGED);
  const entry = splitAlongLine(layer, [[3, 0], [0, 3], [0, 4], [5, 4]], { label: 5, nextId: 9, minPiece: 4 });
  assert.ok(entry);
  assert.deepEqual(rows(layer), [
    ". . . . . . . . . .",
    ". 9 9 9 5 5 5 5 . 2",
    ". 9 9 9 5 5 5 5 . 2",
    ". 9 9 9 5 5 5 5 . 2",
    ". 9 9 9 5 5 5 5 . 2",
    ". . . . . . . . . 2",
  ]);
  // A line that only clips the corner leaves one piece big enough: nothing to cut.
  const corner = grid(MERGED);
  assert.equal(splitAlongLine(corner, [[3, 0], [0, 3]], { label: 5, nextId: 9, minPiece: 4 }), null);
  assert.deepEqual(rows(corner), rows(grid(MERGED)));
  assert.equal(splitAlongLine(corner, [[0, 4], [5, 4]], { label: 5, nextId: 9 }), null,
    "12-px halves are under the default smallest piece");
  assert.equal(MIN_PIECE_PX, 15);
});

test("a line crossing the cell twice makes three pieces; the largest keeps the id", () => {
  const layer = grid(MERGED);
  splitAlongLine(layer, [[0, 2], [5, 2], [5, 6], [0, 6]], { label: 5, nextId: 20, minPiece: 1 });
  assert.deepEqual(rows(layer), [
    ". . . . . . . . . .",
    ". 20 5 5 5 5 5 21 . 2",
    ". 20 5 5 5 5 5 21 . 2",
    ". 20 5 5 5 5 5 21 . 2",
    ". 20 5 5 5 5 5 21 . 2",
    ". . . . . . . . . 2",
  ]);
});

test("other cells and other parts of the same id the line does not cross keep their pixels", () => {
  const start = grid(`
    . . . . . . .
    5 5 5 . 5 5 5
    5 5 5 . 5 5 5
    5 5 5 . 5 5 5
    . . . . . . .`);
  const layer = cloneLayer(start);
  splitAlongLine(layer, [[0, 1], [4, 1]], { label: 5, nextId: 6, minPiece: 1 });
  assert.deepEqual(rows(layer), [
    ". . . . . . .",
    "5 5 6 . 5 5 5",
    "5 5 6 . 5 5 5",
    "5 5 6 . 5 5 5",
    ". . . . . . .",
  ]);
});

test("the cell under the stroke: the selected one when crossed, else the most crossed", () => {
  const layer = grid(MERGED);
  assert.equal(cellUnderStroke(layer, [[0, 4], [5, 4]]), 5);
  assert.equal(cellUnderStroke(layer, [[2, 4], [2, 9]]), 5, "4 pixels of cell 5 against one of cell 2");
  assert.equal(cellUnderStroke(layer, [[2, 4], [2, 9]], 2), 2);
  assert.equal(cellUnderStroke(layer, [[0, 4], [5, 4]], 2), 5, "the selected cell is not crossed");
  assert.equal(cellUnderStroke(layer, [[0, 0], [0, 8]]), null);
});

test("stroke pixels: an 8-connected polyline, clipped to the layer, each pixel once", () => {
  assert.deepEqual(strokePixels([[-2, 0], [2, 0], [2, 2], [2, 0]], 4, 4), [0, 4, 8, 9, 10]);
  assert.deepEqual(strokePixels([[0.4, 0.6]], 4, 4), [1]);
  assert.throws(() => strokePixels([[Number.NaN, 1]], 4, 4), /not a number/);
});

test("bad options are refused", () => {
  const layer = grid(MERGED);
  assert.throws(() => splitAlongLine(layer, [[0, 4], [5, 4]], { label: 0 }), RangeError);
  assert.throws(() => splitAlongLine(layer, [[0, 4], [5, 4]], { label: 5, nextId: -1 }), RangeError);
  assert.throws(() => splitAlongLine(layer, [[0, 4], [5, 4]], { label: 5, minPiece: 0 }), /smallest piece/);
  const fresh = grid(MERGED);
  splitAlongLine(fresh, [[0, 4], [5, 4]], { label: 5, minPiece: 1 });
  assert.equal(fresh.data[1 * 10 + 6], 6, "default new id: one more than the layer's largest");
});
