/**
 * Undo / redo of history entries, their plain-object form, and a store that
 * keeps them (with the unsaved labels) in IndexedDB so a refresh or a crash
 * loses nothing.
 *
 * An entry is `{bbox: [y0, x0, y1, x1], before: Int32Array, after:
 * Int32Array, feature}` (see `labels.js`); `layers` is the array of label
 * layers indexed by `feature` (0 whole_cell, 1 nuclear).
 *
 * @module editor/history
 */

import { applyPatch, createLayer } from "./labels.js";

/** Default cap on the patch bytes both stacks hold together (64 MiB). */
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

const HISTORY_FORMAT = "looplabel-history";
const SESSION_FORMAT = "looplabel-editor-session";
const FORMAT_VERSION = 1;

function entryBytes(entry) {
  return entry.before.byteLength + entry.after.byteLength;
}

function layerFor(layers, feature) {
  const layer = layers[feature];
  if (!layer) throw new RangeError(`this history entry edits feature ${feature} but no such label layer is loaded`);
  return layer;
}

/**
 * Write one side of an entry into its layer.
 *
 * @param {object[]} layers Label layers indexed by feature.
 * @param {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}} entry
 * @param {"before"|"after"} side "before" undoes the edit, "after" redoes it.
 * @returns {number[]} The entry's bbox `[y0, x0, y1, x1]` (the rectangle to redraw).
 */
export function applyEntry(layers, entry, side) {
  if (side !== "before" && side !== "after") throw new RangeError(`side must be "before" or "after", got ${side}`);
  applyPatch(layerFor(layers, entry.feature), entry.bbox, entry[side]);
  return entry.bbox;
}

function toInt32(value, what) {
  if (value instanceof Int32Array) return value;
  if (value instanceof ArrayBuffer) return new Int32Array(value.slice(0));
  if (Array.isArray(value)) return Int32Array.from(value);
  throw new TypeError(`${what} must be an Int32Array, an ArrayBuffer or an array of ids`);
}

/**
 * Check a plain object and turn it into an entry.
 *
 * @param {object} plain `{bbox, before, after, feature}`; patches as
 *   Int32Array, ArrayBuffer (little-endian int32) or number arrays.
 * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}}
 * @throws {Error} When the object is not a well-formed entry.
 */
export function entryFromPlain(plain) {
  if (!plain || !Array.isArray(plain.bbox) || plain.bbox.length !== 4 || !plain.bbox.every(Number.isInteger)) {
    throw new Error("a stored history entry has no valid bbox [y0, x0, y1, x1]; discard the stored history");
  }
  const [y0, x0, y1, x1] = plain.bbox;
  const area = (y1 - y0) * (x1 - x0);
  const before = toInt32(plain.before, "entry.before");
  const after = toInt32(plain.after, "entry.after");
  if (y1 <= y0 || x1 <= x0 || before.length !== area || after.length !== area) {
    throw new Error(`a stored history entry's patches do not match its bbox [${plain.bbox}]; discard the stored history`);
  }
  if (!Number.isInteger(plain.feature) || plain.feature < 0) {
    throw new Error(`a stored history entry has an invalid feature index ${plain.feature}`);
  }
  return { bbox: plain.bbox.slice(), before, after, feature: plain.feature };
}

/** Undo and redo stacks with a cap on the memory their patches take. */
export class History {
  /**
   * @param {{maxBytes?: number}} [options] `maxBytes`: cap on the bytes of
   *   all patches held; the oldest undo entries are dropped beyond it (the
   *   newest entry is always kept).
   */
  constructor({ maxBytes = DEFAULT_MAX_BYTES } = {}) {
    if (!(maxBytes > 0)) throw new RangeError(`history maxBytes must be positive, got ${maxBytes}`);
    this.maxBytes = maxBytes;
    this.undoStack = [];
    this.redoStack = [];
    this.bytes = 0;
  }

  /** @returns {boolean} Whether there is an edit to undo. */
  get canUndo() { return this.undoStack.length > 0; }

  /** @returns {boolean} Whether there is an undone edit to redo. */
  get canRedo() { return this.redoStack.length > 0; }

  /**
   * Record an edit that has already been applied to the layers. Clears the
   * redo stack. A null entry (the tool changed nothing) is ignored.
   *
   * @param {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null} entry
   * @returns {boolean} Whether an entry was recorded.
   */
  push(entry) {
    if (entry === null || entry === undefined) return false;
    entryFromPlain(entry);
    for (const dropped of this.redoStack) this.bytes -= entryBytes(dropped);
    this.redoStack = [];
    this.undoStack.push(entry);
    this.bytes += entryBytes(entry);
    this.enforceCap();
    return true;
  }

  /** Drop the oldest undo entries until under the cap, keeping the newest. */
  enforceCap() {
    while (this.bytes > this.maxBytes && this.undoStack.length > 1) {
      this.bytes -= entryBytes(this.undoStack.shift());
    }
  }

  /**
   * Undo the newest edit.
   *
   * @param {object[]} layers Label layers indexed by feature, edited in place.
   * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
   *   The undone entry (redraw its bbox on its feature), or null when none.
   */
  undo(layers) {
    const entry = this.undoStack.pop();
    if (!entry) return null;
    applyEntry(layers, entry, "before");
    this.redoStack.push(entry);
    return entry;
  }

  /**
   * Redo the newest undone edit.
   *
   * @param {object[]} layers Label layers indexed by feature, edited in place.
   * @returns {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null}
   *   The redone entry, or null when none.
   */
  redo(layers) {
    const entry = this.redoStack.pop();
    if (!entry) return null;
    applyEntry(layers, entry, "after");
    this.undoStack.push(entry);
    return entry;
  }

  /** Forget every entry (e.g. after a revision was submitted). */
  clear() {
    this.undoStack = [];
    this.redoStack = [];
    this.bytes = 0;
  }

  /**
   * Plain-object form for IndexedDB (structured clone) or `postMessage`.
   * The patches are shared, not copied: structured cloning copies them.
   *
   * @returns {{format: string, version: number, maxBytes: number, undo: object[], redo: object[]}}
   *   `undo` oldest first, `redo` with the next edit to redo last.
   */
  serialize() {
    const plain = (e) => ({ bbox: e.bbox.slice(), before: e.before, after: e.after, feature: e.feature });
    return {
      format: HISTORY_FORMAT,
      version: FORMAT_VERSION,
      maxBytes: this.maxBytes,
      undo: this.undoStack.map(plain),
      redo: this.redoStack.map(plain),
    };
  }

  /**
   * Rebuild a history from {@link History#serialize}'s output.
   *
   * @param {object} plain Serialized history.
   * @returns {History}
   * @throws {Error} When the object is not a serialized history of this version.
   */
  static deserialize(plain) {
    if (!plain || plain.format !== HISTORY_FORMAT || plain.version !== FORMAT_VERSION
        || !Array.isArray(plain.undo) || !Array.isArray(plain.redo)) {
      throw new Error(`stored undo history is not a ${HISTORY_FORMAT} v${FORMAT_VERSION} object; discard it`);
    }
    const history = new History({ maxBytes: plain.maxBytes });
    history.undoStack = plain.undo.map(entryFromPlain);
    history.redoStack = plain.redo.map(entryFromPlain);
    for (const e of [...history.undoStack, ...history.redoStack]) history.bytes += entryBytes(e);
    return history;
  }
}

/** In-memory key-value backend with IndexedDB's copy semantics (tests, no-IndexedDB fallback). */
export class MemoryKeyValue {
  constructor() { this.records = new Map(); }
  /** @param {string} key @returns {Promise<object|undefined>} A copy of the record. */
  async get(key) { return this.records.has(key) ? structuredClone(this.records.get(key)) : undefined; }
  /** @param {string} key @param {object} value Stored as a structured clone. */
  async put(key, value) { this.records.set(key, structuredClone(value)); }
  /** @param {string} key */
  async delete(key) { this.records.delete(key); }
}

function requestDone(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function transactionDone(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction aborted (storage full?)"));
  });
}

/**
 * Open (creating if needed) an IndexedDB object store as a key-value backend.
 *
 * @param {IDBFactory} indexedDB `globalThis.indexedDB`, or a fake in tests.
 * @param {string} [dbName="looplabel-editor"] Database name.
 * @param {string} [storeName="sessions"] Object store name (out-of-line keys).
 * @returns {Promise<{get: Function, put: Function, delete: Function}>}
 */
export async function openIndexedDbKeyValue(indexedDB, dbName = "looplabel-editor", storeName = "sessions") {
  const request = indexedDB.open(dbName, 1);
  request.onupgradeneeded = () => {
    const db = request.result;
    if (!db.objectStoreNames.contains(storeName)) db.createObjectStore(storeName);
  };
  const db = await requestDone(request);
  const run = async (mode, act) => {
    const tx = db.transaction(storeName, mode);
    const done = transactionDone(tx);
    const result = requestDone(act(tx.objectStore(storeName)));
    await done;
    return result;
  };
  return {
    get: (key) => run("readonly", (store) => store.get(key)),
    put: (key, value) => run("readwrite", (store) => store.put(value, key)).then(() => undefined),
    delete: (key) => run("readwrite", (store) => store.delete(key)).then(() => undefined),
  };
}

/**
 * Keeps one editing session (history + unsaved labels) per key, e.g.
 * `"assignment:42"`. The page saves after each edit (debounced) and loads on
 * start; it discards the session once the server has the revision.
 */
export class HistoryStore {
  /** @param {{get: Function, put: Function, delete: Function}} keyValue Async backend. */
  constructor(keyValue) {
    this.keyValue = keyValue;
  }

  /**
   * A store on IndexedDB when the environment has it.
   *
   * @param {{indexedDB?: IDBFactory, dbName?: string}} [options]
   * @returns {Promise<HistoryStore|null>} null when there is no IndexedDB
   *   (the page then keeps history in memory only).
   */
  static async open({ indexedDB = globalThis.indexedDB, dbName = "looplabel-editor" } = {}) {
    if (!indexedDB) return null;
    return new HistoryStore(await openIndexedDbKeyValue(indexedDB, dbName));
  }

  /**
   * Persist the session.
   *
   * @param {string} key Session key.
   * @param {{history: History, layers: object[], meta?: object}} session
   *   `layers`: the current label layers (Int32Array data); `meta`: anything
   *   structured-cloneable (e.g. the base revision number).
   * @returns {Promise<void>}
   */
  async save(key, { history, layers, meta = {} }) {
    await this.keyValue.put(key, {
      format: SESSION_FORMAT,
      version: FORMAT_VERSION,
      savedAt: Date.now(),
      meta,
      layers: layers.map((l) => ({ width: l.width, height: l.height, data: l.data })),
      history: history.serialize(),
    });
  }

  /**
   * Read a saved session back.
   *
   * @param {string} key Session key.
   * @returns {Promise<{history: History, layers: object[], meta: object, savedAt: number}|null>}
   *   null when nothing is stored under `key`.
   * @throws {Error} When the stored record is unreadable (discard it).
   */
  async load(key) {
    const record = await this.keyValue.get(key);
    if (record === undefined || record === null) return null;
    if (record.format !== SESSION_FORMAT || record.version !== FORMAT_VERSION || !Array.isArray(record.layers)) {
      throw new Error(`the editing session stored under "${key}" is not readable by this editor; discard it`);
    }
    const layers = record.layers.map((l) => createLayer(l.width, l.height, toInt32(l.data, "stored label data")));
    return { history: History.deserialize(record.history), layers, meta: record.meta, savedAt: record.savedAt };
  }

  /**
   * Forget a saved session.
   *
   * @param {string} key Session key.
   * @returns {Promise<void>}
   */
  async discard(key) {
    await this.keyValue.delete(key);
  }
}
