import test from "node:test";
import assert from "node:assert/strict";

import { DisplayState, OUTLINE_CHOICES, defaultChannelSettings, hexToRgb, highlightColour, rgbToHex } from "../editor/app/display.js";
import { grid } from "./layer_grids.js";

const rgbaAt = (out, width, y, x) => Array.from(out.subarray((y * width + x) * 4, (y * width + x) * 4 + 4));

test("hex colours: parse with or without #, any case; refuse anything else", () => {
  assert.deepEqual(hexToRgb("#00ff40"), [0, 255, 64]);
  assert.deepEqual(hexToRgb("FF8000"), [255, 128, 0]);
  assert.deepEqual(hexToRgb("#aBcDeF"), [171, 205, 239]);
  for (const bad of ["#fff", "#12345g", "", null, undefined, "#1234567"]) {
    assert.throws(() => hexToRgb(bad), /#rrggbb/, String(bad));
  }
});

test("rgbToHex rounds, clamps and pads; it inverts hexToRgb", () => {
  assert.equal(rgbToHex([0, 15, 255]), "#000fff");
  assert.equal(rgbToHex([300, -4, 127.6]), "#ff0080");
  for (const hex of ["#000000", "#ffffff", "#0a1b2c", "#4c8dff"]) assert.equal(rgbToHex(hexToRgb(hex)), hex);
});

test("default channel settings: project colour, else a distinct fallback; neutral display", () => {
  const settings = defaultChannelSettings([{ name: "DAPI", color: "#0000ff" }, { name: "" }, {}]);
  assert.equal(settings.length, 3);
  assert.deepEqual(settings[0].colour, [0, 0, 255]);
  assert.equal(settings[0].name, "DAPI");
  assert.equal(settings[1].name, "channel 2");
  assert.notDeepEqual(settings[1].colour, settings[2].colour);
  for (const s of settings) {
    assert.deepEqual([s.visible, s.range, s.brightness, s.contrast, s.gamma, s.invert], [true, [0, 255], 0, 1, 1, false]);
  }
});

test("setChannel takes hex colours and rejects bad ranges, gamma and channels", () => {
  const d = new DisplayState([{ name: "a" }, { name: "b" }]);
  d.setChannel(1, { colour: "#102030", range: [10, 20] });
  assert.deepEqual(d.channels[1].colour, [16, 32, 48]);
  assert.deepEqual(d.channels[1].range, [10, 20]);
  assert.throws(() => d.setChannel(2, { visible: false }), /no channel 3/);
  assert.throws(() => d.setChannel(0, { range: [20, 20] }), /display range/);
  assert.throws(() => d.setChannel(0, { range: [-1, 20] }), /display range/);
  assert.throws(() => d.setChannel(0, { gamma: 0 }), /gamma/);
  assert.deepEqual(d.channels[0].range, [0, 255], "a refused change leaves the channel as it was");
});

test("setGrayscale and setLabels validate their input", () => {
  const d = new DisplayState([{ name: "a" }]);
  d.setGrayscale(0);
  assert.equal(d.grayscaleChannel, 0);
  d.setGrayscale(null);
  assert.equal(d.grayscaleChannel, null);
  assert.throws(() => d.setGrayscale(1), /no channel 2/);
  d.setLabels({ mode: "outline", opacity: 0.5 });
  assert.deepEqual(d.labels, { feature: 0, mode: "outline", opacity: 0.5, visible: true, outline: "#ffd60a", selectedOnly: false });
  d.setLabels({ outline: null, selectedOnly: true });
  assert.equal(d.labels.outline, null);
  assert.equal(d.labels.selectedOnly, true);
  assert.throws(() => d.setLabels({ outline: "yellow" }), /#rrggbb/);
  assert.equal(d.labels.outline, null, "a refused outline colour leaves the display as it was");
  assert.throws(() => d.setLabels({ mode: "dots" }), /fill or outline/);
  assert.throws(() => d.setLabels({ opacity: 1.5 }), /0\.\.1/);
  assert.equal(d.labels.mode, "outline");
});

function scene(layers, values) {
  // one channel, 2 rows x 3 columns
  return { channels: Uint8Array.from(values), width: 3, height: 2, layers, selected: null };
}

test("paintRect: the channel in its colour, then the shown label layer blended over it", () => {
  const d = new DisplayState([{ name: "red", color: "#ff0000" }]);
  const whole = grid(". 1 1 \n . . 1");
  const nuclear = grid(". . . \n . . .");
  const sc = scene([whole, nuclear], [255, 255, 0, 100, 100, 0]);
  const out = new Uint8ClampedArray(2 * 3 * 4);
  d.setLabels({ visible: false });
  d.paintRect(out, [0, 0, 2, 3], sc);
  assert.deepEqual(rgbaAt(out, 3, 0, 0), [255, 0, 0, 255]);
  assert.deepEqual(rgbaAt(out, 3, 1, 0), [100, 0, 0, 255]);
  const plain = out.slice();
  d.setLabels({ visible: true });
  d.paintRect(out, [0, 0, 2, 3], sc);
  assert.deepEqual(rgbaAt(out, 3, 0, 0), rgbaAt(plain, 3, 0, 0), "background pixels show the channel alone");
  assert.notDeepEqual(rgbaAt(out, 3, 0, 1), rgbaAt(plain, 3, 0, 1), "cell pixels are tinted");
  d.setLabels({ feature: 1 });
  d.paintRect(out, [0, 0, 2, 3], sc);
  assert.deepEqual(out, plain, "the nuclear layer is empty: nothing is tinted");
});

test("paintRect writes only its rectangle", () => {
  const d = new DisplayState([{ name: "g", color: "#00ff00" }]);
  const sc = scene([grid("1 1 1 \n 1 1 1")], [9, 9, 9, 9, 9, 9]);
  const out = new Uint8ClampedArray(2 * 3 * 4).fill(7);
  d.paintRect(out, [1, 1, 2, 3], sc);
  for (const [y, x] of [[0, 0], [0, 1], [0, 2], [1, 0]]) assert.deepEqual(rgbaAt(out, 3, y, x), [7, 7, 7, 7]);
  for (const [y, x] of [[1, 1], [1, 2]]) assert.equal(rgbaAt(out, 3, y, x)[3], 255);
});

test("grayscale mode shows one channel in white, whatever its colour or visibility", () => {
  const d = new DisplayState([{ name: "a", color: "#ff0000" }, { name: "b", color: "#0000ff" }]);
  d.setLabels({ visible: false });
  d.setChannel(1, { visible: false });
  const sc = { channels: Uint8Array.of(10, 200), width: 1, height: 1, layers: [grid(".")], selected: null };
  const out = new Uint8ClampedArray(4);
  d.setGrayscale(1);
  d.paintRect(out, [0, 0, 1, 1], sc);
  assert.deepEqual(Array.from(out), [200, 200, 200, 255]);
  d.setGrayscale(null);
  d.paintRect(out, [0, 0, 1, 1], sc);
  assert.deepEqual(Array.from(out), [10, 0, 0, 255], "colour mode: the hidden blue channel adds nothing");
});

test("labels default to faint fills with yellow outlines; the selected cell's outline contrasts with any outline colour", () => {
  const d = new DisplayState([{ name: "DAPI", color: "#0050ff" }]);
  assert.equal(d.labels.mode, "fill");
  assert.ok(d.labels.opacity <= 0.25, "fills let the stain show through");
  assert.equal(d.labels.outline, "#ffd60a");
  for (const [hex] of OUTLINE_CHOICES) {
    const h = highlightColour(hex);
    if (hex !== null) assert.notDeepEqual(h, hexToRgb(hex), `highlight differs from outline ${hex}`);
  }
  assert.deepEqual(highlightColour("#ffffff"), [255, 80, 40]);
  assert.deepEqual(highlightColour(null), [255, 255, 255]);
});

test("paintRect draws outlines in the chosen colour and can show the selected cell alone", () => {
  const d = new DisplayState([{ name: "k", color: "#000000" }]);
  const layer = grid(`
    1 1 1 2 2
    1 1 1 2 2
    1 1 1 2 2`);
  const sc = { channels: new Uint8Array(15), width: 5, height: 3, layers: [layer], selected: 2 };
  const out = new Uint8ClampedArray(15 * 4);
  d.setLabels({ mode: "outline", outline: "#00e5ff" });
  d.paintRect(out, [0, 0, 3, 5], sc);
  assert.deepEqual(rgbaAt(out, 5, 1, 2), [0, 229, 255, 255], "cell 1's outline is cyan");
  assert.deepEqual(rgbaAt(out, 5, 1, 0), [0, 0, 0, 255], "inside an unselected cell: nothing in outline mode");
  assert.deepEqual(rgbaAt(out, 5, 1, 3), [255, 255, 255, 255], "the selected cell's outline is white");
  d.setLabels({ selectedOnly: true });
  d.paintRect(out, [0, 0, 3, 5], sc);
  assert.deepEqual(rgbaAt(out, 5, 1, 2), [0, 0, 0, 255], "other cells are hidden");
  assert.deepEqual(rgbaAt(out, 5, 1, 3), [255, 255, 255, 255]);
});
