/**
 * The wire format between editor and server: raw little-endian array bytes,
 * C order, deflate-compressed (zlib stream, what Python's `zlib.compress`
 * writes), with the shape and dtype sent alongside (headers or a JSON
 * envelope). Channels travel as uint8 `(C, h, w)`, labels as int32 `(F, h, w)`.
 *
 * Uses `CompressionStream` / `DecompressionStream("deflate")`, present in
 * browsers and Node >= 18: no dependency.
 *
 * @module editor/codec
 */

import { createLayer } from "./labels.js";

/** Typed array class of each supported dtype; NumPy spellings accepted. */
const DTYPES = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
  uint32: Uint32Array, int32: Int32Array, float32: Float32Array, float64: Float64Array,
};
const NUMPY_CODES = {
  u1: "uint8", i1: "int8", u2: "uint16", i2: "int16", u4: "uint32", i4: "int32", f4: "float32", f8: "float64",
};

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Canonical dtype name.
 *
 * @param {string} dtype "int32", "uint8", ... or a NumPy code ("<i4", "|u1", "i4").
 * @returns {string} One of the keys of the supported dtypes.
 * @throws {Error} On an unknown or big-endian dtype.
 */
export function normalizeDtype(dtype) {
  if (typeof dtype !== "string") throw new Error(`array dtype must be a string, got ${dtype}`);
  if (DTYPES[dtype]) return dtype;
  const m = /^([<|=>]?)([iuf][1248])$/.exec(dtype);
  if (m && m[1] === ">") throw new Error(`big-endian dtype ${dtype} is not supported; the server must send little-endian arrays`);
  if (m && NUMPY_CODES[m[2]]) return NUMPY_CODES[m[2]];
  throw new Error(`unsupported array dtype "${dtype}" (expected one of ${Object.keys(DTYPES).join(", ")})`);
}

async function pipeBytes(bytes, transform) {
  const stream = new Blob([bytes]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Inflate a zlib (RFC 1950) stream.
 *
 * @param {Uint8Array|ArrayBuffer} bytes Compressed bytes.
 * @returns {Promise<Uint8Array>} The raw bytes.
 * @throws {Error} When the bytes are not a valid deflate stream.
 */
export async function inflate(bytes) {
  try {
    return await pipeBytes(bytes, new DecompressionStream("deflate"));
  } catch (err) {
    throw new Error(`the server's array data is not a valid deflate (zlib) stream: ${err.message}`);
  }
}

/**
 * Deflate bytes into a zlib (RFC 1950) stream.
 *
 * @param {Uint8Array} bytes Raw bytes.
 * @returns {Promise<Uint8Array>} Compressed bytes.
 */
export async function deflate(bytes) {
  return pipeBytes(bytes, new CompressionStream("deflate"));
}

/**
 * Decode one array from the wire.
 *
 * @param {Uint8Array|ArrayBuffer} bytes Deflate-compressed raw bytes,
 *   little-endian, C order.
 * @param {string} dtype Element type ("uint8", "int32", "<i4", ...).
 * @param {number[]} shape Array shape, e.g. `[C, h, w]`.
 * @returns {Promise<Uint8Array|Int8Array|Uint16Array|Int16Array|Uint32Array|Int32Array|Float32Array|Float64Array>}
 *   Flat typed array of `prod(shape)` elements, C order.
 * @throws {Error} On an unknown dtype, a bad shape, corrupt data or a byte
 *   count that does not match shape x dtype.
 */
export async function decodeArray(bytes, dtype, shape) {
  const name = normalizeDtype(dtype);
  if (!Array.isArray(shape) || !shape.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new Error(`array shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  const Type = DTYPES[name];
  const count = shape.reduce((a, b) => a * b, 1);
  const raw = await inflate(bytes);
  if (raw.byteLength !== count * Type.BYTES_PER_ELEMENT) {
    throw new Error(`array data holds ${raw.byteLength} bytes but shape [${shape}] of ${name} needs ${count * Type.BYTES_PER_ELEMENT}`);
  }
  const aligned = raw.byteOffset % Type.BYTES_PER_ELEMENT === 0 ? raw : raw.slice();
  const out = new Type(aligned.buffer, aligned.byteOffset, count);
  if (!LITTLE_ENDIAN_HOST && Type.BYTES_PER_ELEMENT > 1) swapBytes(new Uint8Array(out.buffer, out.byteOffset, out.byteLength), Type.BYTES_PER_ELEMENT);
  return out;
}

function swapBytes(bytes, size) {
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/**
 * Decode a label stack into one layer per feature.
 *
 * @param {Uint8Array|ArrayBuffer} bytes Deflate-compressed int32 `(F, h, w)`.
 * @param {number[]} shape `[F, h, w]`.
 * @param {string} [dtype="int32"] Must be int32 (labels are always int32).
 * @returns {Promise<{width: number, height: number, data: Int32Array}[]>} F
 *   layers (whole_cell, nuclear), each with its own copy of the ids.
 * @throws {Error} When the shape is not 3-D or the dtype is not int32.
 */
export async function decodeLabels(bytes, shape, dtype = "int32") {
  if (normalizeDtype(dtype) !== "int32") throw new Error(`labels must be int32 on the wire, got ${dtype}`);
  if (!Array.isArray(shape) || shape.length !== 3) throw new Error(`a label stack has shape [F, h, w], got ${JSON.stringify(shape)}`);
  const [F, h, w] = shape;
  const flat = await decodeArray(bytes, "int32", shape);
  const layers = [];
  for (let f = 0; f < F; f++) layers.push(createLayer(w, h, flat.slice(f * h * w, (f + 1) * h * w)));
  return layers;
}

/**
 * Encode label layers for upload: int32 `(F, h, w)` little-endian, deflated.
 *
 * @param {{width: number, height: number, data: Int32Array}[]} layers F layers
 *   of one size, in feature order.
 * @returns {Promise<Uint8Array>} Compressed bytes; the shape to send with
 *   them is {@link labelStackShape}`(layers)`, dtype "int32".
 * @throws {Error} When there are no layers or their sizes differ.
 */
export async function encodeLabels(layers) {
  const [F, h, w] = labelStackShape(layers);
  const raw = new Uint8Array(F * h * w * 4);
  for (let f = 0; f < F; f++) {
    const data = layers[f].data;
    if (!(data instanceof Int32Array)) throw new Error(`label layer ${f} is not an Int32Array`);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    raw.set(bytes, f * h * w * 4);
  }
  if (!LITTLE_ENDIAN_HOST) swapBytes(raw, 4);
  return deflate(raw);
}

/**
 * Shape of the stack a list of layers makes.
 *
 * @param {{width: number, height: number}[]} layers
 * @returns {number[]} `[F, h, w]`.
 * @throws {Error} When there are no layers or their sizes differ.
 */
export function labelStackShape(layers) {
  if (!Array.isArray(layers) || layers.length === 0) throw new Error("there are no label layers to encode");
  const { width, height } = layers[0];
  for (const [f, layer] of layers.entries()) {
    if (layer.width !== width || layer.height !== height) {
      throw new Error(`label layer ${f} is ${layer.height}x${layer.width} but layer 0 is ${height}x${width}`);
    }
  }
  return [layers.length, height, width];
}
