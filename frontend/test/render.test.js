import test from "node:test";
import assert from "node:assert/strict";

import {
  SELECTED_FILL_MIN, SELECTED_FILL_OUTLINE_MODE, colourLuts, compositeChannels, drawLabels, hueToRgb, intensityLut, isOutline, labelColour,
} from "../editor/render.js";
import { grid, seededRandom } from "./layer_grids.js";

const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test("intensity LUT: display range maps lo..hi onto 0..1 and clamps outside", () => {
  const lut = intensityLut({ range: [50, 150] });
  close(lut[0], 0); close(lut[50], 0); close(lut[100], 0.5); close(lut[150], 1); close(lut[200], 1);
  const step = intensityLut({ range: [100, 100] });
  close(step[99], 0); close(step[100], 1);
});

test("intensity LUT: gamma, contrast, brightness and invert", () => {
  close(intensityLut({ range: [0, 100], gamma: 2 })[50], 0.25);
  close(intensityLut({ range: [0, 100], gamma: 0.5 })[25], 0.5);
  const contrast = intensityLut({ range: [0, 100], contrast: 2 });
  close(contrast[75], 1); close(contrast[25], 0); close(contrast[50], 0.5); close(contrast[60], 0.7);
  const bright = intensityLut({ range: [0, 100], brightness: 0.25 });
  close(bright[50], 0.75); close(bright[100], 1); close(bright[0], 0.25);
  const inverted = intensityLut({ range: [0, 100], invert: true });
  close(inverted[25], 0.75); close(inverted[200], 0);
  close(intensityLut({})[255], 1);
  assert.throws(() => intensityLut({ gamma: 0 }), /gamma must be positive/);
});

test("colour LUTs scale the channel colour by intensity", () => {
  const [r, g, b] = colourLuts({ colour: [255, 128, 0], range: [0, 100] });
  assert.deepEqual([r[50], g[50], b[50]], [128, 64, 0]);
  assert.deepEqual([r[100], g[100], b[100]], [255, 128, 0]);
});

function rgba(out, i) {
  return Array.from(out.subarray(i * 4, i * 4 + 4));
}

test("channels add their colours, clamp at 255 and respect on/off", () => {
  // 2 channels, 1 row x 2 columns: channel-major.
  const channels = Uint8Array.of(255, 100, /* ch1 */ 128, 200);
  const settings = [{ colour: [255, 0, 0] }, { colour: [0, 255, 0], range: [0, 200] }];
  const out = new Uint8ClampedArray(2 * 4);
  compositeChannels(channels, 2, 2, 1, settings, out);
  assert.deepEqual(rgba(out, 0), [255, 163, 0, 255]); // 128/200*255 = 163.2
  assert.deepEqual(rgba(out, 1), [100, 255, 0, 255]);

  compositeChannels(channels, 2, 2, 1, [settings[0], { ...settings[1], visible: false }], out);
  assert.deepEqual(rgba(out, 0), [255, 0, 0, 255]);

  const white = Uint8Array.of(255, 255);
  compositeChannels(white, 2, 1, 1, [{ colour: [200, 200, 200] }, { colour: [100, 0, 0] }], out.subarray(0, 4));
  assert.deepEqual(rgba(out, 0), [255, 200, 200, 255]);
});

test("invert and gamma reach the composite", () => {
  const channels = Uint8Array.of(255, 100, 64);
  const out = new Uint8ClampedArray(3 * 4);
  compositeChannels(channels, 1, 3, 1, [{ colour: [255, 0, 0], invert: true }], out);
  assert.deepEqual([out[0], out[4]], [0, 155]); // (1 - 100/255) * 255 = 155
  compositeChannels(channels, 1, 3, 1, [{ colour: [0, 0, 255], gamma: 0.5 }], out);
  assert.equal(out[8 + 2], 128); // sqrt(64/255) * 255 = 127.75
});

test("grayscale mode shows one channel in white, ignoring its colour and visibility", () => {
  const channels = Uint8Array.of(255, 100, /* ch1 */ 128, 200);
  const settings = [{ colour: [255, 0, 0] }, { colour: [0, 255, 0], range: [0, 200], visible: false }];
  const out = new Uint8ClampedArray(2 * 4);
  compositeChannels(channels, 2, 2, 1, settings, out, undefined, { grayscaleChannel: 1 });
  assert.deepEqual(rgba(out, 0), [163, 163, 163, 255]);
  assert.deepEqual(rgba(out, 1), [255, 255, 255, 255]);
  assert.throws(() => compositeChannels(channels, 2, 2, 1, settings, out, undefined, { grayscaleChannel: 2 }), /does not exist/);
});

test("compositing writes only the dirty rectangle", () => {
  const channels = new Uint8Array(9).fill(255);
  const out = new Uint8ClampedArray(9 * 4).fill(7);
  compositeChannels(channels, 1, 3, 3, [{}], out, [1, 1, 2, 3]);
  for (let i = 0; i < 9; i++) {
    const written = i === 4 || i === 5;
    assert.deepEqual(rgba(out, i), written ? [255, 255, 255, 255] : [7, 7, 7, 7], `pixel ${i}`);
  }
  assert.throws(() => compositeChannels(channels, 1, 3, 3, [{}], out, [0, 0, 4, 3]), /does not fit/);
  assert.throws(() => compositeChannels(channels, 2, 3, 3, [{}], out), /C\*h\*w/);
});

const BLOCK = `
  . . . . .
  . 2 2 2 .
  . 2 2 2 .
  . 2 2 2 .
  . . . . .`;
const RING = [6, 7, 8, 11, 13, 16, 17, 18];

function grey(n) {
  const out = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) out.set([100, 100, 100, 255], i * 4);
  return out;
}

test("outline pixels are those with a 4-neighbour of another id", () => {
  const layer = grid(BLOCK);
  const outline = [];
  for (let i = 0; i < 25; i++) if (layer.data[i] !== 0 && isOutline(layer, Math.floor(i / 5), i % 5)) outline.push(i);
  assert.deepEqual(outline, RING);

  const out = grey(25);
  drawLabels(layer, out, undefined, { mode: "outline", opacity: 1, colours: new Map([[2, [10, 20, 30]]]) });
  for (let i = 0; i < 25; i++) {
    assert.deepEqual(rgba(out, i), RING.includes(i) ? [10, 20, 30, 255] : [100, 100, 100, 255], `pixel ${i}`);
  }
});

test("the image edge is not an outline; touching labels outline each other", () => {
  const full = grid(`
    1 1 1
    1 1 1`);
  const out = grey(6);
  drawLabels(full, out, undefined, { mode: "outline", opacity: 1, colours: () => [0, 0, 0] });
  assert.ok(out.every((v, i) => v === (i % 4 === 3 ? 255 : 100)));

  const touching = grid(`
    1 1 2 2
    1 1 2 2`);
  const out2 = grey(8);
  drawLabels(touching, out2, undefined, { mode: "outline", opacity: 1, colours: () => [0, 0, 0] });
  const drawn = [];
  for (let i = 0; i < 8; i++) if (out2[i * 4] === 0) drawn.push(i);
  assert.deepEqual(drawn, [1, 2, 5, 6]);
});

test("fill mode blends every labelled pixel at the opacity; background is untouched", () => {
  const out = grey(25);
  drawLabels(grid(BLOCK), out, undefined, { mode: "fill", opacity: 0.5, colours: () => [200, 0, 50] });
  for (let i = 0; i < 25; i++) {
    const inside = grid(BLOCK).data[i] === 2;
    assert.deepEqual(rgba(out, i), inside ? [150, 50, 75, 255] : [100, 100, 100, 255], `pixel ${i}`);
  }
});

test("the selected label gets an opaque outline in the highlight colour", () => {
  const out = grey(25);
  drawLabels(grid(BLOCK), out, undefined, { mode: "fill", opacity: 0.5, selected: 2, colours: () => [200, 0, 50] });
  for (const i of RING) assert.deepEqual(rgba(out, i), [255, 255, 255, 255]);
  assert.deepEqual(rgba(out, 12), [150, 50, 75, 255]);
});

test("drawLabels draws only its rectangle but reads neighbours outside it", () => {
  const out = grey(25);
  drawLabels(grid(BLOCK), out, [2, 0, 3, 5], { mode: "outline", opacity: 1, colours: () => [0, 0, 0] });
  const drawn = [];
  for (let i = 0; i < 25; i++) if (out[i * 4] === 0) drawn.push(i);
  assert.deepEqual(drawn, [11, 13]);
  assert.throws(() => drawLabels(grid(BLOCK), out, undefined, { mode: "dots" }), /"fill" or "outline"/);
  assert.throws(() => drawLabels(grid(BLOCK), out, undefined, { opacity: 2 }), /opacity/);
});

test("label colours are deterministic, valid and spread over hues", () => {
  assert.deepEqual(hueToRgb(0), [255, 64, 64]);
  assert.deepEqual(hueToRgb(120), [64, 255, 64]);
  assert.deepEqual(hueToRgb(240), [64, 64, 255]);
  const seen = new Set();
  for (let id = 1; id <= 100; id++) {
    const c = labelColour(id);
    assert.deepEqual(labelColour(id), c);
    assert.ok(c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255));
    seen.add(c.join(","));
  }
  assert.ok(seen.size >= 80, `only ${seen.size} distinct colours for 100 ids`);
  assert.notDeepEqual(labelColour(1), labelColour(2));
});

function unalignedCopy(out) {
  // Same bytes at byte offset 1: the renderers must fall back to byte writes.
  const shifted = new Uint8ClampedArray(new ArrayBuffer(out.length + 1), 1, out.length);
  shifted.set(out);
  return shifted;
}

test("any number of channels composite to the clamped sum of their colour LUTs", () => {
  const rand = seededRandom(9);
  for (const C of [1, 2, 3, 4, 5, 7]) {
    const w = 6, h = 5;
    const channels = Uint8Array.from({ length: C * w * h }, () => Math.floor(rand() * 256));
    const settings = Array.from({ length: C }, () => ({
      colour: [0, 1, 2].map(() => Math.floor(rand() * 256)),
      range: [Math.floor(rand() * 60), 150 + Math.floor(rand() * 105)],
      gamma: 0.5 + rand(),
      invert: rand() < 0.3,
      visible: rand() < 0.8,
    }));
    const out = new Uint8ClampedArray(w * h * 4);
    compositeChannels(channels, C, w, h, settings, out);
    const luts = settings.map((s) => colourLuts(s));
    for (let i = 0; i < w * h; i++) {
      const expected = [0, 0, 0];
      for (let c = 0; c < C; c++) {
        if (!settings[c].visible) continue;
        for (let k = 0; k < 3; k++) expected[k] += luts[c][k][channels[c * w * h + i]];
      }
      assert.deepEqual(rgba(out, i), [...expected.map((v) => Math.min(255, v)), 255], `C=${C} pixel ${i}`);
    }
    const shifted = unalignedCopy(new Uint8ClampedArray(w * h * 4));
    compositeChannels(channels, C, w, h, settings, shifted);
    assert.deepEqual(Array.from(shifted), Array.from(out));
  }
});

test("label overlay gives the same pixels on unaligned buffers", () => {
  const layer = grid(`
    . 1 1 2
    3 1 1 2
    3 3 . 2`);
  for (const options of [{ mode: "fill", opacity: 0.3, selected: 1 }, { mode: "outline", opacity: 0.8, selected: 2 }]) {
    const out = grey(12);
    const shifted = unalignedCopy(out);
    drawLabels(layer, out, undefined, options);
    drawLabels(layer, shifted, undefined, options);
    assert.deepEqual(Array.from(shifted), Array.from(out));
  }
});

const TOUCHING = `
  1 1 2 2 .
  1 1 2 2 .
  . . . . .`;

test("one outline colour: every cell's outline in it, opaque, in outline and in fill mode", () => {
  const layer = grid(TOUCHING);
  const colours = (id) => (id === 1 ? [200, 0, 0] : [0, 0, 200]);
  const out = grey(15);
  drawLabels(layer, out, undefined, { mode: "outline", opacity: 0.1, outlineColour: [255, 214, 10], colours });
  for (let i = 0; i < 15; i++) {
    const id = layer.data[i];
    const expected = id !== 0 && isOutline(layer, Math.floor(i / 5), i % 5) ? [255, 214, 10, 255] : [100, 100, 100, 255];
    assert.deepEqual(rgba(out, i), expected, `pixel ${i}`);
  }
  const filled = grey(15);
  const block = grid(BLOCK);
  const big = grey(25);
  drawLabels(block, big, undefined, { mode: "fill", opacity: 0.5, outlineColour: [0, 229, 255], colours: () => [200, 0, 50] });
  for (const i of RING) assert.deepEqual(rgba(big, i), [0, 229, 255, 255], `outline pixel ${i}`);
  assert.deepEqual(rgba(big, 12), [150, 50, 75, 255], "the inside is filled at the opacity");
  drawLabels(layer, filled, undefined, { mode: "fill", opacity: 0.5, colours });
  assert.deepEqual(rgba(filled, 1), [150, 50, 50, 255], "without an outline colour, fill mode blends outlines too");
});

test("outline mode without one colour draws each cell's outline opaque in its own colour", () => {
  const out = grey(15);
  drawLabels(grid(TOUCHING), out, undefined, { mode: "outline", opacity: 0.2, colours: (id) => (id === 1 ? [200, 0, 0] : [0, 0, 200]) });
  assert.deepEqual(rgba(out, 1), [200, 0, 0, 255]);
  assert.deepEqual(rgba(out, 2), [0, 0, 200, 255]);
});

test("the selected cell is highlighted in every mode: outline in the highlight colour, inside tinted", () => {
  const colours = () => [200, 0, 56];
  const faint = grey(25);
  drawLabels(grid(BLOCK), faint, undefined, { mode: "fill", opacity: 0.05, selected: 2, colours });
  const a = Math.round(SELECTED_FILL_MIN * 256);
  const mix = (bg, c) => (bg * (256 - a) + c * a) >> 8;
  assert.deepEqual(rgba(faint, 12), [mix(100, 200), mix(100, 0), mix(100, 56), 255], "at least SELECTED_FILL_MIN in fill mode");
  for (const i of RING) assert.deepEqual(rgba(faint, i), [255, 255, 255, 255]);

  const outlined = grey(25);
  drawLabels(grid(BLOCK), outlined, undefined, { mode: "outline", selected: 2, selectedColour: [255, 80, 40], outlineColour: [255, 255, 255], colours });
  const b = Math.round(SELECTED_FILL_OUTLINE_MODE * 256);
  assert.deepEqual(rgba(outlined, 12), [(100 * (256 - b) + 200 * b) >> 8, (100 * (256 - b)) >> 8, (100 * (256 - b) + 56 * b) >> 8, 255],
    "outline mode tints the selected cell's inside");
  for (const i of RING) assert.deepEqual(rgba(outlined, i), [255, 80, 40, 255]);
});

test("selected only: the other cells are not drawn; with no selection nothing is", () => {
  const layer = grid(TOUCHING);
  const out = grey(15);
  drawLabels(layer, out, undefined, { mode: "fill", opacity: 0.5, selected: 2, selectedOnly: true, outlineColour: [255, 214, 10], colours: () => [0, 0, 0] });
  for (let i = 0; i < 15; i++) {
    if (layer.data[i] !== 2) assert.deepEqual(rgba(out, i), [100, 100, 100, 255], `pixel ${i} (not the selected cell)`);
    else assert.notDeepEqual(rgba(out, i), [100, 100, 100, 255], `pixel ${i} (the selected cell)`);
  }
  const none = grey(15);
  drawLabels(layer, none, undefined, { mode: "fill", opacity: 0.5, selectedOnly: true });
  assert.ok(none.every((v, i) => v === (i % 4 === 3 ? 255 : 100)));
});
