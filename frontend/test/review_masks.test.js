import test from "node:test";
import assert from "node:assert/strict";

import { diffBox, maskBox, paintMask } from "../pages/review/masks.js";
import { MASK_STYLES } from "../pages/review/overlays.js";
import { seededRandom } from "./layer_grids.js";

function randomMask(random, width, height, density) {
  return Uint8Array.from({ length: width * height }, () => (random() < density ? 1 : 0));
}

/** Bounding box of the pixels where `on(i)` holds, by brute force. */
function bruteBox(width, height, on) {
  let box = null;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!on(y * width + x)) continue;
      box = box ? [Math.min(box[0], y), Math.min(box[1], x), Math.max(box[2], y + 1), Math.max(box[3], x + 1)] : [y, x, y + 1, x + 1];
    }
  }
  return box;
}

test("maskBox and diffBox agree with brute force on random masks (property)", () => {
  const random = seededRandom(11);
  for (let trial = 0; trial < 200; trial++) {
    const width = 1 + Math.floor(random() * 12), height = 1 + Math.floor(random() * 12);
    const density = [0, 0.02, 0.2, 1][trial % 4];
    const a = randomMask(random, width, height, density);
    const b = randomMask(random, width, height, density / 2);
    assert.deepEqual(maskBox(a, width, height), bruteBox(width, height, (i) => a[i] !== 0));
    assert.deepEqual(diffBox(a, b, width, height), bruteBox(width, height, (i) => (a[i] !== 0) !== (b[i] !== 0)));
    assert.equal(diffBox(a, a.slice(), width, height), null);
  }
  assert.throws(() => maskBox(new Uint8Array(5), 2, 2), /hold 4 values/);
});

test("paintMask: outline pixels at the edge opacity, interior at the fill opacity, nothing else", () => {
  // 5x5 mask with a 3x3 block at rows/columns 1..3: only (2, 2) is interior.
  const width = 5, height = 5;
  const mask = new Uint8Array(width * height);
  for (let y = 1; y < 4; y++) for (let x = 1; x < 4; x++) mask[y * width + x] = 1;
  const out = new Uint8ClampedArray(width * height * 4).fill(100);
  const style = { colour: [200, 0, 40], fill: 0.5, edge: 1 };
  paintMask(mask, width, height, out, [0, 0, height, width], style);
  const at = (y, x) => Array.from(out.subarray((y * width + x) * 4, (y * width + x) * 4 + 4));
  assert.deepEqual(at(2, 2), [150, 50, 70, 100], "interior: half way from 100 to the colour; alpha untouched");
  for (const [y, x] of [[1, 1], [1, 2], [3, 3], [2, 1]]) assert.deepEqual(at(y, x), [200, 0, 40, 100], `edge (${y}, ${x})`);
  for (const [y, x] of [[0, 0], [4, 4], [0, 2], [2, 4]]) assert.deepEqual(at(y, x), [100, 100, 100, 100], `off (${y}, ${x})`);
});

test("paintMask: the image border is no outline, and only the rectangle is written (property)", () => {
  const random = seededRandom(5);
  for (let trial = 0; trial < 60; trial++) {
    const width = 2 + Math.floor(random() * 9), height = 2 + Math.floor(random() * 9);
    const mask = randomMask(random, width, height, 0.5);
    const before = Uint8ClampedArray.from({ length: width * height * 4 }, () => Math.floor(random() * 256));
    const out = before.slice();
    const y0 = Math.floor(random() * height), x0 = Math.floor(random() * width);
    const rect = [y0, x0, y0 + 1 + Math.floor(random() * (height - y0)), x0 + 1 + Math.floor(random() * (width - x0))];
    paintMask(mask, width, height, out, rect, { colour: [255, 255, 255], fill: 0.25, edge: 0.75 });
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        const inside = y >= rect[0] && y < rect[2] && x >= rect[1] && x < rect[3];
        const px = Array.from(out.subarray(i * 4, i * 4 + 4)), was = Array.from(before.subarray(i * 4, i * 4 + 4));
        if (!inside || !mask[i]) {
          assert.deepEqual(px, was);
          continue;
        }
        const neighbours = [[y - 1, x], [y + 1, x], [y, x - 1], [y, x + 1]].filter(([v, u]) => v >= 0 && u >= 0 && v < height && u < width);
        const edge = neighbours.some(([v, u]) => !mask[v * width + u]);
        const a = edge ? 192 : 64; // round(0.75 * 256), round(0.25 * 256)
        assert.deepEqual(px.slice(0, 3), was.slice(0, 3).map((v) => (v * (256 - a) + 255 * a) >> 8));
        assert.equal(px[3], was[3]);
      }
    }
  }
  const out = new Uint8ClampedArray(16);
  assert.throws(() => paintMask(new Uint8Array(4), 2, 2, out, [0, 0, 3, 2], MASK_STYLES.changed), /does not fit/);
  assert.throws(() => paintMask(new Uint8Array(4), 2, 2, out, [0, 0, 2, 2], { colour: [0, 0, 0], fill: 2, edge: 1 }), /0\.\.1/);
});
