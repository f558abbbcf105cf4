import test from "node:test";
import assert from "node:assert/strict";

import { autoRange } from "../editor/auto_range.js";
import { seededRandom } from "./layer_grids.js";

/** A dim uint8 channel: background ~6, 10 % nuclei ~40 (a crop from a dim part of an image). */
function dimCrop(n = 270 * 270, { hot = 0, floor = 0, saturated = 0 } = {}) {
  const rand = seededRandom(3);
  const values = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const nucleus = rand() < 0.1;
    values[i] = Math.round(nucleus ? 34 + rand() * 12 : 4 + rand() * 4);
  }
  for (let i = 0; i < n * hot; i++) values[Math.floor(rand() * n)] = 80 + Math.floor(rand() * 175); // hot pixels
  for (let i = 0; i < n * floor; i++) values[i] = 0;
  for (let i = 0; i < n * saturated; i++) values[n - 1 - i] = 255;
  return values;
}

test("auto range stretches a dim crop: nuclei near the top, background near the bottom", () => {
  const [lo, hi] = autoRange(dimCrop());
  assert.ok(lo >= 4 && lo <= 5, `lo ${lo}`);
  assert.ok(hi >= 44 && hi <= 46, `hi ${hi}`);
});

test("sparse hot pixels, a zero floor and saturated pixels do not set the range", () => {
  for (const options of [{ hot: 0.004 }, { floor: 0.3 }, { saturated: 0.01 }, { hot: 0.004, floor: 0.3, saturated: 0.01 }]) {
    const [lo, hi] = autoRange(dimCrop(undefined, options));
    assert.ok(lo >= 4 && lo <= 5, `lo ${lo} with ${JSON.stringify(options)}`);
    assert.ok(hi >= 44 && hi <= 47, `hi ${hi} with ${JSON.stringify(options)}`);
  }
});

test("a bright population that is real content keeps the top", () => {
  const values = dimCrop();
  for (let i = 0; i < values.length * 0.02; i++) values[i * 7] = 200 + (i % 20); // 2 % bright cells
  assert.ok(autoRange(values)[1] >= 200);
});

test("flat and two-valued channels give a valid range; bad percentiles are refused", () => {
  assert.deepEqual(autoRange(new Uint8Array(100).fill(7)), [7, 8]);
  assert.deepEqual(autoRange(new Uint8Array(100).fill(255)), [254, 255]);
  assert.deepEqual(autoRange(Uint8Array.from([0, 0, 0, 200, 200])), [0, 200]);
  assert.deepEqual(autoRange(new Uint8Array(0)), [0, 255]);
  assert.throws(() => autoRange(new Uint8Array(4), { low: 50, high: 10 }), /percentiles/);
});
