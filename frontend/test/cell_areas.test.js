import test from "node:test";
import assert from "node:assert/strict";

import { CellAreas, trackCellAreas } from "../editor/cell_areas.js";
import { grid } from "./layer_grids.js";

test("cell areas: pixels per id, background not counted, count of cells", () => {
  const areas = new CellAreas(grid(`
    1 1 . 3
    1 2 2 3
    . 2 . 3`));
  assert.deepEqual([areas.area(1), areas.area(2), areas.area(3), areas.area(0), areas.area(9)], [3, 3, 3, 0, 0]);
  assert.equal(areas.count, 3);
});

test("a patch moves pixels between ids; an id left with none is no longer a cell", () => {
  const areas = new CellAreas(grid("1 1 2 \n 1 2 2"));
  areas.applyPatch(Int32Array.of(2, 2, 2), Int32Array.of(1, 0, 4));
  assert.deepEqual([areas.area(1), areas.area(2), areas.area(4)], [4, 0, 1]);
  assert.equal(areas.count, 2);
  assert.throws(() => areas.applyPatch(Int32Array.of(1), Int32Array.of(1, 2)), /as many ids/);
});

test("tracked areas follow edits, undos and redos of each layer, and recount after a replace", () => {
  const editor = new EventTarget();
  editor.layers = [grid("1 1 . \n . . ."), grid(". . . \n . . 5")];
  const tracked = trackCellAreas(editor);
  assert.equal(tracked.of(0).area(1), 2);
  const entry = { bbox: [1, 0, 2, 3], before: Int32Array.of(0, 0, 0), after: Int32Array.of(1, 1, 7), feature: 0 };
  editor.layers[0].data.set(entry.after, 3);
  const fire = (kind, e) => editor.dispatchEvent(new CustomEvent("edit", { detail: { kind, entry: e } }));
  fire("edit", entry);
  assert.deepEqual([tracked.of(0).area(1), tracked.of(0).area(7), tracked.of(0).count], [4, 1, 2]);
  fire("undo", entry);
  assert.deepEqual([tracked.of(0).area(1), tracked.of(0).area(7), tracked.of(0).count], [2, 0, 1]);
  fire("redo", entry);
  assert.equal(tracked.of(0).area(7), 1);
  assert.equal(tracked.of(1).area(5), 1, "the other layer is untouched");
  editor.layers = [grid("3 3 3 \n 3 3 3"), grid(". . . \n . . .")];
  fire("replace", null);
  assert.deepEqual([tracked.of(0).area(3), tracked.of(0).count, tracked.of(1).count], [6, 1, 0]);
});
