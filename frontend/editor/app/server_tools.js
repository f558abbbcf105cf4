/**
 * The editor side of the server tools (threshold, watershed split, autofit,
 * add a cell):
 * the request body for a box of the current layer, and the returned box as
 * one undo entry.
 *
 * Wire format of a box: base64 of deflate(int32 little-endian, row-major).
 *
 * @module editor/app/server_tools
 */

import { decodeArray, deflate } from "../codec.js";
import { applyPatch, extractPatch, growBbox, labelBbox, makeEntry } from "../labels.js";

/** Server tool names, as the API spells them. */
export const SERVER_TOOLS = Object.freeze(["threshold", "watershed_split", "autofit", "add_cell"]);

/** Margin (px) around a cell's bbox sent with a watershed split. */
export const SPLIT_MARGIN_PX = 3;
/** Margin (px) around a cell's bbox sent with autofit (its band of 5 px, plus 2). */
export const AUTOFIT_MARGIN_PX = 7;

/** Half side (px) of the box sent with "add a cell here": the server looks at most this far from the click. */
export const ADD_CELL_HALF_PX = 48;

/** How the messages name each server tool. */
const TOOL_TITLES = Object.freeze({
  threshold: "Threshold", watershed_split: "Split", autofit: "Autofit", add_cell: "Add cell",
});

const CHUNK = 0x8000;

/**
 * Base64 of bytes (browser `btoa`, chunked so large boxes do not overflow the stack).
 *
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function bytesToBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += CHUNK) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  return btoa(binary);
}

/**
 * Bytes of a base64 string.
 *
 * @param {string} text
 * @returns {Uint8Array}
 * @throws {Error} When the text is not base64.
 */
export function base64ToBytes(text) {
  let binary;
  try {
    binary = atob(text);
  } catch {
    throw new Error("the server's tool answer is not valid base64; reload the page");
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/**
 * A box of a layer in the wire format.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number[]} bbox `[y0, x0, y1, x1]`.
 * @returns {Promise<string>} base64(deflate(int32 LE)).
 */
export async function encodeBox(layer, bbox) {
  const patch = extractPatch(layer, bbox);
  return bytesToBase64(await deflate(new Uint8Array(patch.buffer, patch.byteOffset, patch.byteLength)));
}

/**
 * Decode a box sent back by the server.
 *
 * @param {string} text base64(deflate(int32 LE)).
 * @param {number[]} bbox `[y0, x0, y1, x1]` it covers.
 * @returns {Promise<Int32Array>} `(y1 - y0) * (x1 - x0)` ids, row-major.
 */
export async function decodeBox(text, bbox) {
  return /** @type {Promise<Int32Array>} */ (decodeArray(base64ToBytes(text), "int32", [bbox[2] - bbox[0], bbox[3] - bbox[1]]));
}

/**
 * The box sent for a tool on one cell: its bbox grown by `margin`, clipped.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number} id Cell id.
 * @param {number} margin Pixels.
 * @returns {number[]|null} `[y0, x0, y1, x1]`, or null when the cell is absent.
 */
export function cellBox(layer, id, margin) {
  const tight = labelBbox(layer, id);
  return tight && growBbox(tight, margin, layer.height, layer.width);
}

/**
 * The box sent with "add a cell here": the click ± `half` px, clipped.
 *
 * @param {number} y Click row, image pixels.
 * @param {number} x Click column.
 * @param {number} height Layer height.
 * @param {number} width Layer width.
 * @param {number} [half=ADD_CELL_HALF_PX]
 * @returns {number[]|null} `[y0, x0, y1, x1]`, or null when the click is off the layer.
 */
export function clickBox(y, x, height, width, half = ADD_CELL_HALF_PX) {
  if (!(y >= 0 && x >= 0 && y < height && x < width)) return null;
  return growBbox([y, x, y + 1, x + 1], half, height, width);
}

/**
 * Request body of a server tool.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer The edited layer.
 * @param {object} request
 * @param {number} request.feature 0 whole_cell, 1 nuclear.
 * @param {number[]} request.bbox `[y0, x0, y1, x1]`, image pixels.
 * @param {number} [request.label] Target cell id (not for add_cell).
 * @param {number|null} [request.channel] Image channel the tool looks at (null: server default).
 * @param {number|null} [request.level] Threshold: the level, 0..255 display units (null: automatic, Otsu).
 * @param {number[][]} [request.seeds] Split: `[y, x]` seed pixels, image coordinates.
 * @param {number} [request.nextId] Split, add cell: first free id.
 * @param {number[]} [request.point] Add cell: the click `[y, x]`, image coordinates.
 * @returns {Promise<object>} JSON body for `POST .../tools/<name>`.
 */
export async function toolBody(layer, { feature, bbox, label, channel = null, level = null, seeds, nextId, point }) {
  const body = { feature, bbox: bbox.slice(), labels: await encodeBox(layer, bbox) };
  if (label !== undefined) body.label = label;
  if (point) body.point = [point[0], point[1]];
  if (channel !== null && channel !== undefined) body.channel = channel;
  if (level !== null && level !== undefined) body.level = level;
  if (seeds) body.seeds = seeds.map(([y, x]) => [y, x]);
  if (nextId !== undefined) body.next_id = nextId;
  return body;
}

/**
 * The channel a server tool looks at when the request names none (the server's rule).
 *
 * @param {number} feature 0 whole_cell, 1 nuclear.
 * @param {number} nChannels Channels of the image.
 * @returns {number} Nuclear: channel 0 (the nuclear stain); whole-cell: channel 1 (the membrane), or 0 alone.
 */
export function defaultToolChannel(feature, nChannels) {
  return feature === 1 || nChannels === 1 ? 0 : 1;
}

/**
 * What a tool ran with, as the messages say it: "Threshold on channel 2 (membrane), level 120".
 *
 * @param {string} name Server tool name.
 * @param {{feature: number, channel?: number, level?: number}} body The request sent.
 * @param {string[]} channelNames Names of the image's channels.
 * @returns {string}
 */
export function toolContext(name, body, channelNames) {
  const channel = body.channel ?? defaultToolChannel(body.feature, channelNames.length);
  const level = name === "threshold" ? `, level ${body.level ?? "automatic"}` : "";
  return `${TOOL_TITLES[name] || name} on channel ${channel + 1} (${channelNames[channel]})${level}`;
}

/**
 * A server's message as a sentence: first letter up, a final stop.
 *
 * @param {string} text
 * @returns {string}
 */
export function sentence(text) {
  const t = String(text || "").trim();
  const up = t.charAt(0).toUpperCase() + t.slice(1);
  return !t || /[.!?]$/.test(t) ? up : `${up}.`;
}

/**
 * Turn a tool answer into one history entry (not yet applied).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer The edited layer.
 * @param {number} feature Its index.
 * @param {{changed: boolean, bbox?: number[], labels?: string}} answer Server JSON.
 * @returns {Promise<object|null>} `{bbox, before, after, feature}` trimmed to
 *   the pixels that differ, or null when nothing changes.
 * @throws {Error} When the answer's box does not fit the layer.
 */
export async function answerToEntry(layer, feature, answer) {
  if (!answer || !answer.changed) return null;
  const bbox = answer.bbox;
  if (!Array.isArray(bbox) || bbox.length !== 4 || bbox[0] < 0 || bbox[1] < 0 || bbox[2] > layer.height || bbox[3] > layer.width) {
    throw new Error(`the server answered a box [${bbox}] outside the ${layer.height}x${layer.width} image; reload the page`);
  }
  const after = await decodeBox(answer.labels, bbox);
  return makeEntry(bbox, extractPatch(layer, bbox), after, feature);
}

/**
 * Run a server tool for an editor: send the box of its shown layer, apply
 * the answer as one undo entry. Editing is locked (`editor.busy`) meanwhile,
 * so the layer cannot change under the request. Errors become an error message
 * that names what the tool ran with ({@link toolContext}); an answer that
 * changed nothing shows the server's reason, a note on a change (a split cut
 * halfway) is shown too. The editor emits `tool` `{name, answer}` with the
 * answer (threshold: the `levels` it used).
 *
 * @param {import("./editor.js").Editor} editor
 * @param {"threshold"|"watershed_split"|"autofit"|"add_cell"} name
 * @param {{bbox: number[], label?: number, seeds?: number[][], nextId?: number, point?: number[],
 *   channel?: number|null, level?: number|null}} request `channel`: default the grayscale channel shown.
 * @returns {Promise<boolean>} Whether the labels changed.
 */
export async function runServerTool(editor, name, request) {
  if (!editor.serverTool) { editor.notify("Server tools are not available here.", "error"); return false; }
  if (!editor.canEdit()) return false;
  editor.busy = true;
  editor.emit("state", { busy: true });
  const feature = editor.feature;
  const layer = editor.layer;
  const channel = request.channel ?? editor.display.grayscaleChannel;
  const names = editor.display.channels.map((c) => c.name);
  try {
    const body = await toolBody(layer, { ...request, feature, channel });
    let answer;
    try {
      answer = await editor.serverTool(name, body);
    } catch (err) {
      throw new Error(`${toolContext(name, body, names)}: ${sentence(err.message || err)}`);
    }
    editor.emit("tool", { name, answer });
    const entry = await answerToEntry(layer, feature, answer);
    if (!entry) {
      const why = answer && answer.note;
      if (why) editor.notify(`${toolContext(name, body, names)}: ${sentence(why)}`, "error");
      else editor.notify("The tool found nothing to change here.");
      return false;
    }
    applyPatch(layer, entry.bbox, entry.after);
    editor.commit(entry);
    if (answer.note) editor.notify(sentence(answer.note));
    return true;
  } catch (err) {
    editor.notify(err.message || String(err), "error");
    return false;
  } finally {
    editor.busy = false;
    editor.emit("state", { busy: false });
  }
}
