import test from "node:test";
import assert from "node:assert/strict";

import {
  forgetTaskParams, readResume, readTaskParams, rememberResume, rememberTaskParams, stripTaskParams,
} from "../pages/annotate/task_link.js";

/** sessionStorage look-alike. */
function memoryStorage() {
  const items = new Map();
  return {
    items,
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => { items.set(k, String(v)); },
    removeItem: (k) => { items.delete(k); },
  };
}

const blockedStorage = {
  getItem() { throw new Error("SecurityError"); },
  setItem() { throw new Error("SecurityError"); },
  removeItem() { throw new Error("SecurityError"); },
};

test("parameters in the address bar win and are kept for this tab", () => {
  const storage = memoryStorage();
  const got = readTaskParams(5, { search: "?PROLIFIC_PID=p1&STUDY_ID=s%202&x=" }, storage);
  assert.deepEqual(got, { params: { PROLIFIC_PID: "p1", STUDY_ID: "s 2", x: "" }, fromUrl: true });
  const again = readTaskParams(5, { search: "" }, storage);
  assert.deepEqual(again, { params: { PROLIFIC_PID: "p1", STUDY_ID: "s 2", x: "" }, fromUrl: false });
});

test("each project keeps its own parameters", () => {
  const storage = memoryStorage();
  readTaskParams(1, { search: "?worker=a" }, storage);
  readTaskParams(2, { search: "?worker=b" }, storage);
  assert.deepEqual(readTaskParams(1, { search: "" }, storage).params, { worker: "a" });
  assert.deepEqual(readTaskParams(2, { search: "" }, storage).params, { worker: "b" });
  assert.equal(readTaskParams(3, { search: "" }, storage).params, null);
});

test("unreadable or tampered storage counts as no parameters", () => {
  for (const stored of ["{not json", "[1, 2]", '{"worker": 5}', '"worker"', "null"]) {
    const storage = memoryStorage();
    storage.setItem("looplabel:task-link:9", stored);
    const got = readTaskParams(9, { search: "" }, storage);
    assert.deepEqual(got, { params: null, fromUrl: false }, stored);
  }
});

test("blocked or missing storage: the address bar still works, a reload needs the link again", () => {
  assert.deepEqual(readTaskParams(4, { search: "?worker=w" }, blockedStorage).params, { worker: "w" });
  assert.equal(readTaskParams(4, { search: "" }, blockedStorage).params, null);
  assert.equal(readTaskParams(4, { search: "" }, null).params, null);
  assert.doesNotThrow(() => rememberTaskParams(4, { worker: "w" }, blockedStorage));
  assert.doesNotThrow(() => forgetTaskParams(4, blockedStorage));
});

test("remember then forget", () => {
  const storage = memoryStorage();
  rememberTaskParams(7, { assignmentId: "A1", hitId: "H" }, storage);
  assert.deepEqual(readTaskParams(7, { search: "" }, storage).params, { assignmentId: "A1", hitId: "H" });
  forgetTaskParams(7, storage);
  assert.equal(readTaskParams(7, { search: "" }, storage).params, null);
  assert.equal(storage.items.size, 0);
});

test("stripTaskParams drops the query string in place, keeping path, hash and history state", () => {
  const calls = [];
  const saved = globalThis.window;
  globalThis.window = {
    location: { search: "?worker=w&token=t", pathname: "/annotate/3", hash: "#top" },
    history: { state: { n: 1 }, replaceState: (...args) => calls.push(args) },
  };
  try {
    stripTaskParams();
    assert.deepEqual(calls, [[{ n: 1 }, "", "/annotate/3#top"]]);
    window.location.search = "";
    stripTaskParams();
    assert.equal(calls.length, 1, "nothing to strip: the history is left alone");
  } finally {
    globalThis.window = saved;
  }
});

test("the resume secret is kept per project for this tab, and forgotten on request", () => {
  const storage = memoryStorage();
  assert.equal(readResume(4, storage), null);
  rememberResume(4, "0a1b2c", storage);
  rememberResume(5, "ffee", storage);
  assert.equal(readResume(4, storage), "0a1b2c");
  assert.equal(readResume(5, storage), "ffee");
  rememberResume(4, null, storage);
  assert.equal(readResume(4, storage), null);
  assert.equal(readResume(5, storage), "ffee");
});

test("a tampered or blocked resume store reads as no secret", () => {
  const storage = memoryStorage();
  storage.setItem("looplabel:resume:4", "<script>");
  assert.equal(readResume(4, storage), null);
  assert.equal(readResume(4, blockedStorage), null);
  assert.doesNotThrow(() => rememberResume(4, "ab", blockedStorage));
});
