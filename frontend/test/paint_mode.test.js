import test from "node:test";
import assert from "node:assert/strict";

import {
  DEFAULT_RADII, MAX_RADIUS, RADIUS_STEPS, diameterPx, eraserTarget, modeText, nearestStep, protectedStrokeMessage,
  stepRadius, strokeOptions,
} from "../editor/paint_mode.js";
import { resolveKey } from "../editor/keys.js";

test("size steps grow with the size: 1 px to 11 px in four presses, and they stop at the ends", () => {
  assert.deepEqual(RADIUS_STEPS.map(diameterPx), [1, 3, 5, 7, 11, 17, 25, 33, 49, 65, 81]);
  let r = 0;
  const seen = [];
  for (let i = 0; i < 4; i++) seen.push((r = stepRadius(r, 1)));
  assert.deepEqual(seen, [1, 2, 3, 5]);
  assert.equal(stepRadius(MAX_RADIUS, 1), MAX_RADIUS);
  assert.equal(stepRadius(0, -1), 0);
  const gaps = RADIUS_STEPS.slice(1).map((r, i) => r - RADIUS_STEPS[i]);
  assert.ok(gaps.every((g, i) => g >= 1 && (i === 0 || g >= gaps[i - 1])), `steps ${gaps} grow with the size`);
});

test("a size between steps moves to the next step either way; the slider shows the nearest step", () => {
  assert.equal(stepRadius(4, 1), 5);
  assert.equal(stepRadius(4, -1), 3);
  assert.equal(stepRadius(100, -1), 40);
  assert.equal(RADIUS_STEPS[nearestStep(4)], 3);
  assert.equal(RADIUS_STEPS[nearestStep(7)], 8);
  assert.equal(nearestStep(0), 0);
});

test("the eraser starts at one pixel and the brush at seven", () => {
  assert.equal(diameterPx(DEFAULT_RADII.eraser), 1);
  assert.equal(diameterPx(DEFAULT_RADII.brush), 7);
});

test("safe mode: the brush paints background only, the eraser one cell; overwrite changes every cell", () => {
  assert.deepEqual(strokeOptions({ erase: false, overwrite: false, radius: 3, feature: 0, label: 7 }),
    { radius: 3, feature: 0, label: 7, overBackgroundOnly: true });
  assert.deepEqual(strokeOptions({ erase: false, overwrite: true, radius: 3, feature: 1, label: 7 }),
    { radius: 3, feature: 1, label: 7, overBackgroundOnly: false });
  assert.deepEqual(strokeOptions({ erase: true, overwrite: false, radius: 0, feature: 0, target: 4 }),
    { radius: 0, feature: 0, erase: true, onlyLabel: 4 });
  assert.deepEqual(strokeOptions({ erase: true, overwrite: true, radius: 0, feature: 0, target: 4 }),
    { radius: 0, feature: 0, erase: true, onlyLabel: null });
  assert.throws(() => strokeOptions({ erase: true, overwrite: false, radius: 0, feature: 0, target: null }),
    RangeError);
});

test("a safe eraser erases the selected cell, else the cell the stroke starts on", () => {
  assert.equal(eraserTarget(5, 9), 5);
  assert.equal(eraserTarget(null, 9), 9);
  assert.equal(eraserTarget(null, 0), null);
});

test("the messages name the mode and the overwrite switch's key, which is bound", () => {
  assert.equal(resolveKey({ key: "q" }).action, "brush:overwrite");
  assert.match(protectedStrokeMessage({ erase: false }), /only background.*Press Q to paint over/);
  assert.match(protectedStrokeMessage({ erase: true, target: 12 }), /only cell #12.*press Q to erase every cell/);
  assert.match(protectedStrokeMessage({ erase: true, target: null }), /Start the eraser on the cell.*press Q/);
  assert.equal(modeText("brush", false, 3), "safe: paints background only");
  assert.equal(modeText("eraser", false, 3), "safe: erases #3 only");
  assert.equal(modeText("eraser", false, null), "safe: erases the cell it starts on");
  assert.match(modeText("eraser", true, 3), /overwrite/);
});
