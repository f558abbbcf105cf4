import test from "node:test";
import assert from "node:assert/strict";

import { History, HistoryStore, MemoryKeyValue, applyEntry, entryFromPlain, openIndexedDbKeyValue } from "../editor/history.js";
import { createLayer } from "../editor/labels.js";
import { paintStroke, eraseStroke } from "../editor/tools/brush.js";
import { floodFill } from "../editor/tools/fill.js";
import { swapLabels, deleteLabel } from "../editor/tools/relabel.js";
import { growLabel } from "../editor/tools/morph.js";
import { cloneLayer, grid, rows } from "./layer_grids.js";

function freshLayers() {
  const wholeCell = grid(`
    . . . . . . . .
    . 1 1 . . . . .
    . 1 1 . . 2 2 .
    . . . . . 2 2 .
    . . . . . . . .
    . . . 3 3 . . .
    . . . 3 3 . . .
    . . . . . . . .`);
  const nuclear = createLayer(8, 8);
  return [wholeCell, nuclear];
}

function snapshot(layers) {
  return layers.map((l) => rows(l).join("\n"));
}

/** Runs a scripted session; returns the layer snapshots after each edit. */
function editSession(layers, history) {
  const states = [snapshot(layers)];
  const edits = [
    () => paintStroke(layers[0], [[0, 0], [0, 7]], { label: 4, radius: 0 }),
    () => floodFill(layers[1], 4, 4, { label: 1, feature: 1 }),
    () => swapLabels(layers[0], 1, 2),
    () => growLabel(layers[0], 3),
    () => eraseStroke(layers[0], [[2, 1], [2, 6]], { radius: 0 }),
    () => deleteLabel(layers[1], 1, { feature: 1 }),
  ];
  for (const edit of edits) {
    assert.equal(history.push(edit()), true);
    states.push(snapshot(layers));
  }
  return states;
}

test("undo walks back through every state exactly and redo forward again", () => {
  const layers = freshLayers();
  const history = new History();
  const states = editSession(layers, history);
  for (let i = states.length - 2; i >= 0; i--) {
    const entry = history.undo(layers);
    assert.ok(entry);
    assert.deepEqual(snapshot(layers), states[i], `after undo to state ${i}`);
  }
  assert.equal(history.undo(layers), null);
  assert.equal(history.canUndo, false);
  for (let i = 1; i < states.length; i++) {
    history.redo(layers);
    assert.deepEqual(snapshot(layers), states[i], `after redo to state ${i}`);
  }
  assert.equal(history.redo(layers), null);
});

test("a new edit after undo drops the redo stack; null entries are not recorded", () => {
  const layers = freshLayers();
  const history = new History();
  history.push(paintStroke(layers[0], [[7, 0]], { label: 5, radius: 0 }));
  history.push(paintStroke(layers[0], [[7, 7]], { label: 6, radius: 0 }));
  history.undo(layers);
  assert.equal(history.canRedo, true);
  history.push(paintStroke(layers[0], [[0, 7]], { label: 7, radius: 0 }));
  assert.equal(history.canRedo, false);
  assert.equal(history.push(null), false);
  assert.equal(history.undoStack.length, 2);
  assert.equal(history.bytes, 2 * 2 * 4, "two 1-pixel entries, before + after int32");
});

test("the memory cap drops the oldest entries and keeps the newest", () => {
  const layers = [createLayer(10, 10)];
  // Each 1-pixel entry holds 8 bytes; a cap of 20 bytes keeps two.
  const history = new History({ maxBytes: 20 });
  for (let x = 0; x < 5; x++) history.push(paintStroke(layers[0], [[0, x]], { label: x + 1, radius: 0 }));
  assert.equal(history.undoStack.length, 2);
  assert.equal(history.bytes, 16);
  history.undo(layers);
  history.undo(layers);
  assert.equal(history.undo(layers), null);
  assert.deepEqual(rows(layers[0])[0], "1 2 3 . . . . . . .");

  const big = new History({ maxBytes: 4 });
  big.push(paintStroke(layers[0], [[5, 5]], { label: 9, radius: 2 }));
  assert.equal(big.undoStack.length, 1, "an entry over the cap on its own is still kept");
});

test("serialize round trips through JSON and structured clone", () => {
  const layers = freshLayers();
  const history = new History({ maxBytes: 1 << 20 });
  const states = editSession(layers, history);
  history.undo(layers);
  history.undo(layers);

  const viaJson = JSON.parse(JSON.stringify(history.serialize(), (key, value) =>
    (value instanceof Int32Array ? Array.from(value) : value)));
  const viaClone = structuredClone(history.serialize());
  for (const plain of [viaJson, viaClone]) {
    const restored = History.deserialize(plain);
    const copy = layers.map(cloneLayer);
    assert.equal(restored.maxBytes, 1 << 20);
    assert.equal(restored.bytes, history.bytes);
    restored.redo(copy);
    restored.redo(copy);
    assert.deepEqual(snapshot(copy), states[6]);
    for (let i = 0; i < 6; i++) restored.undo(copy);
    assert.deepEqual(snapshot(copy), states[0]);
  }
});

test("deserialize and push refuse malformed entries with a message", () => {
  assert.throws(() => History.deserialize({ format: "other" }), /discard it/);
  assert.throws(() => entryFromPlain({ bbox: [0, 0, 2, 2], before: [1, 2, 3], after: [1, 2, 3, 4], feature: 0 }), /do not match its bbox/);
  assert.throws(() => entryFromPlain({ bbox: [0, 0, 1], before: [], after: [], feature: 0 }), /valid bbox/);
  assert.throws(() => new History().push({ bbox: [0, 0, 1, 1], before: Int32Array.of(0), after: Int32Array.of(1), feature: -1 }), /feature/);
  const layers = [createLayer(2, 2)];
  assert.throws(() => applyEntry(layers, { bbox: [0, 0, 1, 1], before: Int32Array.of(0), after: Int32Array.of(1), feature: 1 }, "after"), /no such label layer/);
});

test("HistoryStore saves and restores history and unsaved labels (memory backend)", async () => {
  const layers = freshLayers();
  const history = new History();
  const states = editSession(layers, history);
  const store = new HistoryStore(new MemoryKeyValue());
  await store.save("assignment:1", { history, layers, meta: { revision: 3 } });
  layers[0].data.fill(99); // later changes must not leak into what was saved

  const loaded = await store.load("assignment:1");
  assert.deepEqual(loaded.meta, { revision: 3 });
  assert.ok(loaded.savedAt > 0);
  assert.deepEqual(snapshot(loaded.layers), states[6]);
  for (let i = 0; i < 6; i++) loaded.history.undo(loaded.layers);
  assert.deepEqual(snapshot(loaded.layers), states[0]);

  assert.equal(await store.load("assignment:2"), null);
  await store.discard("assignment:1");
  assert.equal(await store.load("assignment:1"), null);
});

test("HistoryStore refuses a record it cannot read", async () => {
  const backend = new MemoryKeyValue();
  await backend.put("k", { format: "something-else" });
  await assert.rejects(new HistoryStore(backend).load("k"), /discard it/);
});

/** Minimal asynchronous IndexedDB look-alike: one version, out-of-line keys. */
function fakeIndexedDB() {
  const databases = new Map();
  const later = (fn) => setTimeout(fn, 0);
  const makeRequest = (compute) => {
    const request = { result: undefined, error: null, onsuccess: null, onerror: null };
    later(() => { request.result = compute(); request.onsuccess?.(); });
    return request;
  };
  return {
    upgrades: 0,
    open(name) {
      const factory = this;
      const request = { result: null, onupgradeneeded: null, onsuccess: null, onerror: null };
      later(() => {
        let stores = databases.get(name);
        const fresh = !stores;
        if (fresh) { stores = new Map(); databases.set(name, stores); }
        request.result = {
          objectStoreNames: { contains: (s) => stores.has(s) },
          createObjectStore: (s) => { stores.set(s, new Map()); },
          transaction: (s) => {
            const tx = { oncomplete: null, onerror: null, onabort: null };
            const records = stores.get(s);
            tx.objectStore = () => ({
              get: (key) => makeRequest(() => (records.has(key) ? structuredClone(records.get(key)) : undefined)),
              put: (value, key) => makeRequest(() => { records.set(key, structuredClone(value)); return key; }),
              delete: (key) => makeRequest(() => { records.delete(key); }),
            });
            later(() => later(() => tx.oncomplete?.()));
            return tx;
          },
        };
        if (fresh) { factory.upgrades++; request.onupgradeneeded?.(); }
        request.onsuccess?.();
      });
      return request;
    },
  };
}

test("HistoryStore.open uses IndexedDB when present, and gives null without it", async () => {
  assert.equal(await HistoryStore.open({ indexedDB: undefined }), null);
  const idb = fakeIndexedDB();
  const layers = freshLayers();
  const history = new History();
  const states = editSession(layers, history);
  const store = await HistoryStore.open({ indexedDB: idb });
  await store.save("crop:7", { history, layers });
  // A second page load opens the same database without an upgrade.
  const reopened = await HistoryStore.open({ indexedDB: idb });
  assert.equal(idb.upgrades, 1);
  const loaded = await reopened.load("crop:7");
  assert.deepEqual(snapshot(loaded.layers), states[6]);
  loaded.history.undo(loaded.layers);
  assert.deepEqual(snapshot(loaded.layers), states[5]);
  await reopened.discard("crop:7");
  assert.equal(await reopened.load("crop:7"), null);
  const kv = await openIndexedDbKeyValue(idb, "other-db");
  assert.equal(await kv.get("missing"), undefined);
});
