import test from "node:test";
import assert from "node:assert/strict";
import { deflateSync, inflateSync } from "node:zlib";

import {
  ADD_CELL_HALF_PX, answerToEntry, base64ToBytes, bytesToBase64, cellBox, clickBox, decodeBox, defaultToolChannel,
  encodeBox, runServerTool, sentence, toolBody, toolContext,
} from "../editor/app/server_tools.js";
import { extractPatch } from "../editor/labels.js";
import { grid, rows, seededRandom } from "./layer_grids.js";

/** What the server sends back: base64(zlib(int32 little-endian)), written with Node's own zlib. */
function serverBox(ids) {
  const data = Int32Array.from(ids);
  return Buffer.from(deflateSync(Buffer.from(data.buffer, data.byteOffset, data.byteLength))).toString("base64");
}

/** What the server reads: the ids of a base64(zlib(int32)) box. */
function readBox(text) {
  const raw = inflateSync(Buffer.from(text, "base64"));
  return Array.from(new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4));
}

test("base64 round trip of any bytes, including more than one chunk", () => {
  const random = seededRandom(3);
  for (const n of [0, 1, 2, 3, 100, 0x8000 * 2 + 5]) {
    const bytes = Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
    const text = bytesToBase64(bytes);
    assert.equal(text, Buffer.from(bytes).toString("base64"));
    assert.deepEqual(base64ToBytes(text), bytes);
  }
  assert.throws(() => base64ToBytes("not base64!"), /not valid base64/);
});

test("a box of a layer is what the server can inflate, and a server box decodes back", async () => {
  const layer = grid(`
    1 1 . 2
    1 1 . 2
    . 3 3 3`);
  const text = await encodeBox(layer, [0, 1, 3, 4]);
  assert.deepEqual(readBox(text), [1, 0, 2, 1, 0, 2, 3, 3, 3]);
  const ids = [5, 0, 2147483647, -1, 7, 8];
  assert.deepEqual(Array.from(await decodeBox(serverBox(ids), [4, 4, 6, 7])), ids);
  await assert.rejects(decodeBox(serverBox([1, 2, 3]), [0, 0, 2, 2]), /needs 16/);
});

test("cellBox: the cell's bbox grown by a margin and clipped; null for an absent cell", () => {
  const layer = grid(`
    . . . . .
    . . 4 4 .
    . . 4 . .
    . . . . .`);
  assert.deepEqual(cellBox(layer, 4, 0), [1, 2, 3, 4]);
  assert.deepEqual(cellBox(layer, 4, 1), [0, 1, 4, 5]);
  assert.deepEqual(cellBox(layer, 4, 10), [0, 0, 4, 5]);
  assert.equal(cellBox(layer, 9, 2), null);
});

test("toolBody: feature, box, label and the box's ids; optional fields only when given", async () => {
  const layer = grid("1 2 \n 3 4");
  const bbox = [0, 0, 2, 2];
  const plain = await toolBody(layer, { feature: 1, bbox, label: 2 });
  assert.deepEqual(Object.keys(plain).sort(), ["bbox", "feature", "label", "labels"]);
  assert.deepEqual([plain.feature, plain.bbox, plain.label], [1, [0, 0, 2, 2], 2]);
  assert.notEqual(plain.bbox, bbox, "the body holds its own copy of the box");
  assert.deepEqual(readBox(plain.labels), [1, 2, 3, 4]);
  const split = await toolBody(layer, { feature: 0, bbox, label: 4, channel: 0, seeds: [[0, 1], [1, 0]], nextId: 9 });
  assert.equal(split.channel, 0, "channel 0 is a channel, not 'absent'");
  assert.deepEqual(split.seeds, [[0, 1], [1, 0]]);
  assert.equal(split.next_id, 9);
  assert.equal("channel" in (await toolBody(layer, { feature: 0, bbox, label: 4, channel: null })), false);
  const levelled = await toolBody(layer, { feature: 0, bbox, label: 4, level: 0 });
  assert.equal(levelled.level, 0, "level 0 is a level, not 'automatic'");
  assert.equal("level" in (await toolBody(layer, { feature: 0, bbox, label: 4, level: null })), false);
});

test("answerToEntry: one entry trimmed to the pixels that change; null when nothing does", async () => {
  const layer = grid(`
    1 1 1 .
    1 1 1 .
    . . . .`);
  const entry = await answerToEntry(layer, 0, { changed: true, bbox: [0, 0, 3, 4], labels: serverBox([1, 1, 1, 0, 1, 5, 5, 0, 0, 0, 0, 0]) });
  assert.deepEqual(entry.bbox, [1, 1, 2, 3]);
  assert.deepEqual(Array.from(entry.before), [1, 1]);
  assert.deepEqual(Array.from(entry.after), [5, 5]);
  assert.equal(entry.feature, 0);
  assert.deepEqual(rows(layer), ["1 1 1 .", "1 1 1 .", ". . . ."], "the layer is not changed yet");
  assert.equal(await answerToEntry(layer, 0, { changed: false }), null);
  assert.equal(await answerToEntry(layer, 0, { changed: true, bbox: [0, 0, 1, 1], labels: serverBox([1]) }), null);
  await assert.rejects(answerToEntry(layer, 0, { changed: true, bbox: [0, 0, 4, 4], labels: serverBox(new Array(16).fill(0)) }),
    /outside the 3x4 image/);
});

/** The parts of an Editor that runServerTool uses. */
function fakeEditor(layer, serverTool, { editable = true } = {}) {
  const events = [];
  return {
    layer, feature: 1, busy: false, serverTool,
    display: { grayscaleChannel: 2, channels: [{ name: "DAPI" }, { name: "membrane" }, { name: "CD45" }] },
    committed: [], messages: [], events,
    canEdit() { return editable && !this.busy; },
    emit(type, detail) { events.push([type, detail, this.busy]); },
    notify(text, level = "info") { this.messages.push([text, level]); },
    commit(entry) { this.committed.push(entry); return true; },
  };
}

test("runServerTool: sends the shown layer's box, applies the answer as one entry, locks edits meanwhile", async () => {
  const layer = grid(`
    7 7 7
    7 7 7`);
  let seen = null;
  const ed = fakeEditor(layer, async (name, body) => {
    seen = { name, body, busy: ed.busy };
    return { changed: true, bbox: [0, 1, 2, 3], labels: serverBox([7, 8, 7, 8]) };
  });
  assert.equal(await runServerTool(ed, "watershed_split", { bbox: [0, 0, 2, 3], label: 7, seeds: [[0, 0], [1, 2]], nextId: 8 }), true);
  assert.equal(seen.name, "watershed_split");
  assert.equal(seen.busy, true, "editing is locked while the request runs");
  assert.deepEqual([seen.body.feature, seen.body.channel, seen.body.next_id], [1, 2, 8]);
  assert.deepEqual(readBox(seen.body.labels), [7, 7, 7, 7, 7, 7]);
  assert.deepEqual(rows(layer), ["7 7 8", "7 7 8"]);
  assert.equal(ed.committed.length, 1);
  assert.deepEqual(ed.committed[0].bbox, [0, 2, 2, 3]);
  assert.deepEqual(Array.from(extractPatch(layer, ed.committed[0].bbox)), Array.from(ed.committed[0].after));
  assert.equal(ed.busy, false);
  assert.deepEqual(ed.events.map(([type, detail]) => [type, detail.busy ?? detail.name]),
    [["state", true], ["tool", "watershed_split"], ["state", false]]);
});

test("runServerTool: errors and empty answers become messages; the layer stays as it was", async () => {
  const layer = grid("1 1 \n 1 1");
  const failing = fakeEditor(layer, async () => { throw new Error("the server is down"); });
  assert.equal(await runServerTool(failing, "autofit", { bbox: [0, 0, 2, 2], label: 1 }), false);
  assert.deepEqual(failing.messages, [["Autofit on channel 3 (CD45): The server is down.", "error"]]);
  assert.equal(failing.busy, false);
  const nothing = fakeEditor(layer, async () => ({ changed: false }));
  assert.equal(await runServerTool(nothing, "threshold", { bbox: [0, 0, 2, 2], label: 1 }), false);
  assert.match(nothing.messages[0][0], /nothing to change/);
  assert.equal(nothing.committed.length, 0);
  assert.deepEqual(rows(layer), ["1 1", "1 1"]);
});

test("runServerTool: a threshold sends its level and channel; the server's reasons and notes are shown", async () => {
  const layer = grid("1 1 \n 1 1");
  const bodies = [];
  const answers = [
    { changed: false, channel: 0, levels: [40, 80], note: "every pixel above the level (80) is already in cell 1" },
    { changed: true, bbox: [0, 0, 1, 1], labels: serverBox([2]), note: "cell 1 was cut halfway between them" },
  ];
  const ed = fakeEditor(layer, async (name, body) => { bodies.push(body); return answers.shift(); });
  assert.equal(await runServerTool(ed, "threshold", { bbox: [0, 0, 2, 2], label: 1, channel: 0, level: 80 }), false);
  assert.deepEqual([bodies[0].channel, bodies[0].level], [0, 80]);
  assert.deepEqual(ed.messages.at(-1), [
    "Threshold on channel 1 (DAPI), level 80: Every pixel above the level (80) is already in cell 1.", "error"]);
  assert.deepEqual(ed.events.find(([type]) => type === "tool")[1].answer.levels, [40, 80]);
  assert.equal(await runServerTool(ed, "watershed_split", { bbox: [0, 0, 2, 2], label: 1, seeds: [[0, 0], [1, 1]],
    nextId: 2 }), true);
  assert.equal(bodies[1].channel, 2, "without a channel of its own a tool looks at the grayscale channel shown");
  assert.equal("level" in bodies[1], false);
  assert.deepEqual(ed.messages.at(-1), ["Cell 1 was cut halfway between them.", "info"]);
});

test("the channel a tool uses by default, and how a message names what a tool ran with", () => {
  assert.equal(defaultToolChannel(1, 3), 0);
  assert.equal(defaultToolChannel(0, 3), 1);
  assert.equal(defaultToolChannel(0, 1), 0);
  const names = ["DAPI", "membrane"];
  assert.equal(toolContext("threshold", { feature: 0 }, names), "Threshold on channel 2 (membrane), level automatic");
  assert.equal(toolContext("threshold", { feature: 0, channel: 0, level: 12 }, names),
    "Threshold on channel 1 (DAPI), level 12");
  assert.equal(toolContext("autofit", { feature: 1 }, names), "Autofit on channel 1 (DAPI)");
  assert.equal(sentence(" no pixel is above the level "), "No pixel is above the level.");
  assert.equal(sentence("Done!"), "Done!");
});

test("runServerTool: refused without a server tool function or when editing is not allowed", async () => {
  const layer = grid("1");
  let calls = 0;
  const readOnly = fakeEditor(layer, async () => { calls++; return { changed: false }; }, { editable: false });
  assert.equal(await runServerTool(readOnly, "autofit", { bbox: [0, 0, 1, 1], label: 1 }), false);
  assert.equal(calls, 0);
  const none = fakeEditor(layer, null);
  assert.equal(await runServerTool(none, "autofit", { bbox: [0, 0, 1, 1], label: 1 }), false);
  assert.match(none.messages[0][0], /not available/);
});

test("clickBox: the click ± the add-cell half side, clipped; null off the layer", () => {
  assert.equal(ADD_CELL_HALF_PX, 48);
  assert.deepEqual(clickBox(100, 120, 270, 270), [52, 72, 149, 169]);
  assert.deepEqual(clickBox(5, 260, 270, 270), [0, 212, 54, 270]);
  assert.deepEqual(clickBox(0, 0, 10, 20, 3), [0, 0, 4, 4]);
  for (const [y, x] of [[-1, 3], [3, -1], [10, 3], [3, 20], [NaN, 1]]) assert.equal(clickBox(y, x, 10, 20), null);
});

test("toolBody for add_cell: the click and the new id, no label", async () => {
  const layer = grid("1 . \n . 4");
  const body = await toolBody(layer, { feature: 0, bbox: [0, 0, 2, 2], point: [0, 1], nextId: 5 });
  assert.deepEqual(Object.keys(body).sort(), ["bbox", "feature", "labels", "next_id", "point"]);
  assert.deepEqual([body.point, body.next_id], [[0, 1], 5]);
  assert.deepEqual(readBox(body.labels), [1, 0, 0, 4]);
});
