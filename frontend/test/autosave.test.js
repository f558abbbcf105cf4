import test from "node:test";
import assert from "node:assert/strict";

// TaskSaver listens for the browser's "online" event on `window`.
if (typeof globalThis.window === "undefined") globalThis.window = new EventTarget();

const { TaskSaver } = await import("../pages/annotate/autosave.js");

class FakeError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }

  get transient() { return this.status === 0 || this.status >= 500; }
}

/** A crowd API whose label saves the test answers one by one. */
function fakeApi() {
  const calls = [];
  return {
    calls,
    putLabels(cropId, layers, baseRevision, editCount) {
      let settle;
      const promise = new Promise((resolve, reject) => { settle = { resolve, reject }; });
      calls.push({ cropId, layers, baseRevision, editCount, ...settle });
      return promise;
    },
  };
}

/** A key-value store that records what it keeps. */
function fakeStore() {
  return { saved: [], async save(key, session) { this.saved.push({ key, ...session, meta: { ...session.meta } }); } };
}

function makeSaver({ meta = {}, store = null, snapshot } = {}) {
  const api = fakeApi();
  const layers = [{ width: 1, height: 1, data: Int32Array.of(0) }];
  const saver = new TaskSaver({
    api, cropId: 42, store, key: "assignment:7", intervalMs: 1e9,
    snapshot: snapshot || (() => ({ layers, history: { entries: [] } })),
    meta: { baseRevision: 3, dirty: false, editCount: 0, activeSeconds: 0, ...meta },
  });
  const states = [];
  saver.addEventListener("state", (e) => states.push(e.detail.state));
  return { saver, api, states, layers };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("starts saved, or unsaved when the restored copy was dirty", () => {
  const clean = makeSaver();
  assert.equal(clean.saver.state, "saved");
  assert.equal(clean.saver.dirty, false);
  const dirty = makeSaver({ meta: { dirty: true, editCount: 4 } });
  assert.equal(dirty.saver.state, "unsaved");
  assert.equal(dirty.saver.dirty, true);
  assert.equal(dirty.saver.editCount, 4);
  clean.saver.stop();
  dirty.saver.stop();
});

test("an edit makes it unsaved; undo and redo change the labels but are not counted as edits", () => {
  const { saver, states } = makeSaver();
  saver.noteEdit(true);
  saver.noteEdit(false);
  saver.noteEdit(true);
  assert.equal(saver.editCount, 2);
  assert.equal(saver.state, "unsaved");
  assert.deepEqual(states, ["unsaved"]);
  saver.stop();
});

test("a save sends the labels on the base revision, then the server's revision is the new base", async () => {
  const { saver, api, states, layers } = makeSaver();
  saver.noteEdit();
  const done = saver.saveServer();
  assert.equal(saver.state, "saving");
  assert.equal(api.calls.length, 1);
  assert.deepEqual([api.calls[0].cropId, api.calls[0].baseRevision, api.calls[0].editCount], [42, 3, 1]);
  assert.equal(api.calls[0].layers, layers);
  api.calls[0].resolve({ revision: 4, changed_pixels: 1 });
  await done;
  assert.equal(saver.baseRevision, 4);
  assert.equal(saver.dirty, false);
  assert.deepEqual(states, ["unsaved", "saving", "saved"]);
  await saver.saveServer();
  assert.equal(api.calls.length, 1, "nothing new: no request");
  saver.stop();
});

test("an edit made while a save is in flight stays unsaved after it lands", async () => {
  const { saver, api } = makeSaver();
  saver.noteEdit();
  const first = saver.saveServer();
  saver.noteEdit();
  api.calls[0].resolve({ revision: 4 });
  await first;
  assert.equal(saver.state, "unsaved");
  assert.equal(saver.dirty, true);
  const second = saver.saveServer();
  await tick();
  assert.equal(api.calls[1].baseRevision, 4);
  api.calls[1].resolve({ revision: 5 });
  await second;
  assert.deepEqual([saver.state, saver.baseRevision, saver.dirty], ["saved", 5, false]);
  saver.stop();
});

test("tick saves only when there is something unsaved and no save is running", async () => {
  const { saver, api } = makeSaver();
  saver.tick();
  assert.equal(api.calls.length, 0);
  saver.noteEdit();
  saver.tick();
  saver.tick();
  await tick();
  assert.equal(api.calls.length, 1);
  api.calls[0].resolve({ revision: 4 });
  await tick();
  assert.equal(saver.state, "saved");
  saver.stop();
});

test("a stale base (409 'stale') is a conflict with an event; other refusals close saving", async () => {
  const stale = makeSaver();
  const conflicts = [];
  stale.saver.addEventListener("conflict", (e) => conflicts.push(e.detail.message));
  stale.saver.noteEdit();
  const attempt = stale.saver.saveServer();
  stale.api.calls[0].reject(new FakeError("revision 3 is stale: another window saved revision 4", 409));
  await assert.rejects(attempt, /stale/);
  assert.equal(stale.saver.state, "conflict");
  assert.deepEqual(conflicts, ["revision 3 is stale: another window saved revision 4"]);
  assert.equal(stale.saver.dirty, true, "the edits are still unsaved");
  stale.saver.tick();
  assert.equal(stale.api.calls.length, 1, "no autosave in the conflict state");

  for (const [status, message] of [[409, "this task was submitted"], [401, "log in"], [403, "blocked"]]) {
    const closed = makeSaver();
    closed.saver.noteEdit();
    const p = closed.saver.saveServer();
    closed.api.calls[0].reject(new FakeError(message, status));
    await assert.rejects(p);
    assert.equal(closed.saver.state, "closed", String(status));
    assert.equal(closed.saver.message, message);
    closed.saver.stop();
  }
  stale.saver.stop();
});

test("no connection is 'offline' and the next tick retries; a 400 is an error", async () => {
  const { saver, api } = makeSaver();
  saver.noteEdit();
  const p = saver.saveServer();
  api.calls[0].reject(new FakeError("Cannot reach the server", 0));
  await assert.rejects(p);
  assert.equal(saver.state, "offline");
  saver.tick();
  await tick();
  assert.equal(api.calls.length, 2);
  api.calls[1].reject(new FakeError("labels must have shape (2, 270, 270)", 400));
  await tick();
  assert.equal(saver.state, "error");
  saver.stop();
});

test("flush saves what is unsaved and fails loudly when the server does not take it", async () => {
  const ok = makeSaver();
  ok.saver.noteEdit();
  const flushed = ok.saver.flush();
  await tick();
  ok.api.calls[0].resolve({ revision: 9 });
  await flushed;
  assert.deepEqual([ok.saver.state, ok.saver.baseRevision], ["saved", 9]);
  ok.saver.stop();

  const down = makeSaver();
  down.saver.noteEdit();
  const failing = down.saver.flush();
  await tick();
  down.api.calls[0].reject(new FakeError("Cannot reach the server", 0));
  await assert.rejects(failing);
  assert.equal(down.saver.dirty, true);
  down.saver.stop();
});

test("rebase makes the next save overwrite the newer revision; reset adopts the server's labels", async () => {
  const { saver, api } = makeSaver();
  saver.noteEdit();
  const p = saver.saveServer();
  api.calls[0].reject(new FakeError("revision 3 is stale", 409));
  await assert.rejects(p);
  saver.rebase(6);
  await tick();
  assert.equal(api.calls.length, 2);
  assert.equal(api.calls[1].baseRevision, 6);
  api.calls[1].resolve({ revision: 7 });
  await tick();
  assert.equal(saver.state, "saved");

  saver.noteEdit();
  saver.reset(12);
  assert.deepEqual([saver.state, saver.baseRevision, saver.dirty], ["saved", 12, false]);
  saver.stop();
});

test("the local copy keeps labels, history and what the next page load needs to resume", async () => {
  const store = fakeStore();
  const { saver, api } = makeSaver({ store, meta: { activeSeconds: 30 } });
  saver.noteEdit();
  await saver.saveLocal();
  assert.equal(store.saved.length, 1);
  assert.equal(store.saved[0].key, "assignment:7");
  assert.deepEqual(store.saved[0].meta, { cropId: 42, baseRevision: 3, dirty: true, editCount: 1, activeSeconds: 30 });
  const p = saver.saveServer();
  api.calls[0].resolve({ revision: 4 });
  await p;
  await saver.localWrite;
  assert.deepEqual([store.saved.at(-1).meta.baseRevision, store.saved.at(-1).meta.dirty], [4, false]);
  saver.stop();
});

test("a failing local store does not lose the state; it says why", async () => {
  const store = { async save() { throw new Error("QuotaExceededError"); } };
  const { saver } = makeSaver({ store });
  saver.noteEdit();
  await saver.saveLocal();
  assert.equal(saver.state, "unsaved");
  assert.match(saver.message, /QuotaExceededError/);
  saver.stop();
});
