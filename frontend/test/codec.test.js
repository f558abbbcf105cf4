import test from "node:test";
import assert from "node:assert/strict";
import { deflateSync, inflateSync } from "node:zlib";

import { decodeArray, decodeLabels, encodeLabels, labelStackShape, normalizeDtype } from "../editor/codec.js";
import { createLayer, MAX_LABEL_ID } from "../editor/labels.js";

/** What the server sends: little-endian bytes compressed with zlib (Python's zlib.compress). */
function serverBytes(values, bytesPerElement, write) {
  const view = new DataView(new ArrayBuffer(values.length * bytesPerElement));
  values.forEach((v, i) => write(view, i * bytesPerElement, v));
  return new Uint8Array(deflateSync(new Uint8Array(view.buffer)));
}

test("decodes int32 labels and uint8 channels sent by a zlib producer", async () => {
  const ids = [0, 1, 70000, MAX_LABEL_ID, 5, 0];
  const labels = await decodeArray(serverBytes(ids, 4, (v, o, x) => v.setInt32(o, x, true)), "int32", [2, 1, 3]);
  assert.ok(labels instanceof Int32Array);
  assert.deepEqual([...labels], ids);

  const pixels = [0, 17, 255, 128];
  const channels = await decodeArray(serverBytes(pixels, 1, (v, o, x) => v.setUint8(o, x)), "|u1", [1, 2, 2]);
  assert.ok(channels instanceof Uint8Array);
  assert.deepEqual([...channels], pixels);

  const floats = await decodeArray(serverBytes([0.5, -2], 4, (v, o, x) => v.setFloat32(o, x, true)), "<f4", [2]);
  assert.deepEqual([...floats], [0.5, -2]);
});

test("decodeLabels splits the (F, h, w) stack into one layer per feature", async () => {
  const stack = [1, 2, 3, 4, 5, 6, /* nuclear */ 0, 0, 9, 0, 0, 9];
  const layers = await decodeLabels(serverBytes(stack, 4, (v, o, x) => v.setInt32(o, x, true)), [2, 2, 3]);
  assert.equal(layers.length, 2);
  assert.deepEqual([layers[0].height, layers[0].width], [2, 3]);
  assert.deepEqual([...layers[0].data], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...layers[1].data], [0, 0, 9, 0, 0, 9]);
  await assert.rejects(decodeLabels(new Uint8Array(), [2, 2, 3], "uint16"), /labels must be int32/);
});

test("encodeLabels writes little-endian int32 (F, h, w) as a zlib stream", async () => {
  const wholeCell = createLayer(3, 2, Int32Array.of(1, 1, 0, 0, 2, MAX_LABEL_ID));
  const nuclear = createLayer(3, 2, Int32Array.of(0, 1, 0, 0, 0, 2));
  const bytes = await encodeLabels([wholeCell, nuclear]);
  const raw = inflateSync(bytes);
  assert.equal(raw.length, 2 * 2 * 3 * 4);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const values = Array.from({ length: 12 }, (_, i) => view.getInt32(i * 4, true));
  assert.deepEqual(values, [1, 1, 0, 0, 2, MAX_LABEL_ID, 0, 1, 0, 0, 0, 2]);
  assert.deepEqual(labelStackShape([wholeCell, nuclear]), [2, 2, 3]);
});

test("encode then decode round trips a large label stack", async () => {
  const w = 270, h = 270;
  const layers = [0, 1].map((f) => createLayer(w, h, Int32Array.from({ length: w * h }, (_, i) => ((i * 7919 + f) % 1000) * (i % 3))));
  const back = await decodeLabels(await encodeLabels(layers), labelStackShape(layers));
  assert.deepEqual(back[0].data, layers[0].data);
  assert.deepEqual(back[1].data, layers[1].data);
});

test("errors name what is wrong", async () => {
  const bytes = serverBytes([1, 2, 3], 4, (v, o, x) => v.setInt32(o, x, true));
  await assert.rejects(decodeArray(bytes, "int32", [2, 2]), /holds 12 bytes but shape \[2,2\] of int32 needs 16/);
  await assert.rejects(decodeArray(bytes, "complex64", [3]), /unsupported array dtype/);
  await assert.rejects(decodeArray(bytes, ">i4", [3]), /big-endian/);
  await assert.rejects(decodeArray(bytes, "int32", [-3]), /non-negative integers/);
  await assert.rejects(decodeArray(Uint8Array.of(1, 2, 3, 4, 5), "uint8", [5]), /not a valid deflate/);
  await assert.rejects(encodeLabels([]), /no label layers/);
  await assert.rejects(encodeLabels([createLayer(2, 2), createLayer(3, 2)]), /layer 1 is 2x3 but layer 0 is 2x2/);
  assert.equal(normalizeDtype("<i4"), "int32");
  assert.equal(normalizeDtype("u2"), "uint16");
});
