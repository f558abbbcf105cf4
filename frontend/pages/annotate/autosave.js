/**
 * Keeps a crowd task's work safe: every edit is written to IndexedDB (labels
 * + undo history, keyed by assignment) within a fraction of a second, and
 * sent to the server as a new revision every few seconds and on submit. The
 * server's optimistic concurrency (X-Base-Revision) turns a save from a
 * stale copy into a 409, which stops autosave and asks the user; local work
 * is never dropped silently.
 *
 * States: `saved` (the server has everything), `unsaved` (edits kept in this
 * browser, not yet sent), `saving`, `offline` (the server is unreachable;
 * retrying), `conflict` (another window saved this task), `closed` (the
 * lease expired, the task was submitted or opened elsewhere: saving stopped),
 * `error`.
 *
 * @module pages/annotate/autosave
 */

/** Milliseconds between server saves while there are unsaved edits. */
export const SERVER_SAVE_INTERVAL_MS = 4000;
/** Milliseconds after the last edit before the local copy is written. */
export const LOCAL_SAVE_DELAY_MS = 250;

/** Autosave of one task. */
export class TaskSaver extends EventTarget {
  /**
   * @param {object} options
   * @param {import("./crowd_api.js").CrowdApi} options.api
   * @param {number} options.cropId
   * @param {import("../../editor/history.js").HistoryStore|null} options.store IndexedDB store (null: none).
   * @param {string} options.key Store key, `assignment:<id>`.
   * @param {() => {layers: object[], history: object}} options.snapshot Current layers and history.
   * @param {{baseRevision: number, dirty: boolean, editCount: number, activeSeconds: number}} options.meta
   */
  constructor({ api, cropId, store, key, snapshot, meta, intervalMs = SERVER_SAVE_INTERVAL_MS }) {
    super();
    this.api = api;
    this.cropId = cropId;
    this.store = store;
    this.key = key;
    this.snapshot = snapshot;
    this.baseRevision = meta.baseRevision;
    this.editCount = meta.editCount || 0;
    this.activeSeconds = meta.activeSeconds || 0;
    this.seq = meta.dirty ? 1 : 0; // edits made
    this.savedSeq = 0; // edits the server has
    this.intervalMs = intervalMs;
    this.inflight = null;
    this.localTimer = 0;
    this.localWrite = Promise.resolve();
    this.state = meta.dirty ? "unsaved" : "saved";
    this.message = "";
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.onOnline = () => this.tick();
    window.addEventListener("online", this.onOnline);
  }

  /** Whether edits are not yet on the server. */
  get dirty() { return this.seq !== this.savedSeq; }

  setState(state, message = "") {
    this.state = state;
    this.message = message;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, message, revision: this.baseRevision } }));
  }

  /**
   * Note a change of the labels.
   *
   * @param {boolean} counts Whether it counts as an edit (undo and redo do not).
   */
  noteEdit(counts = true) {
    this.seq++;
    if (counts) this.editCount++;
    if (this.state === "saved") this.setState("unsaved");
    this.scheduleLocal();
  }

  /** Write the local copy soon (debounced). */
  scheduleLocal() {
    clearTimeout(this.localTimer);
    this.localTimer = setTimeout(() => this.saveLocal(), LOCAL_SAVE_DELAY_MS);
  }

  /**
   * Write labels, history and meta to IndexedDB now.
   *
   * @returns {Promise<void>}
   */
  saveLocal() {
    clearTimeout(this.localTimer);
    if (!this.store) return Promise.resolve();
    const { layers, history } = this.snapshot();
    const meta = {
      cropId: this.cropId, baseRevision: this.baseRevision, dirty: this.dirty,
      editCount: this.editCount, activeSeconds: this.activeSeconds,
    };
    this.localWrite = this.localWrite
      .then(() => this.store.save(this.key, { layers, history, meta }))
      .catch((err) => this.setState(this.state, `Could not keep a copy in this browser: ${err.message}`));
    return this.localWrite;
  }

  /** Periodic: send a revision when there are unsaved edits. */
  tick() {
    if (this.dirty && !this.inflight && (this.state === "unsaved" || this.state === "offline" || this.state === "saved")) {
      this.saveServer().catch(() => {});
    }
  }

  /**
   * Send the current labels as a revision now.
   *
   * @returns {Promise<void>} Resolves when the server has them.
   * @throws {import("./crowd_api.js").ApiError} On failure (the state says what to do).
   */
  async saveServer() {
    if (this.inflight) await this.inflight.catch(() => {});
    if (!this.dirty) return;
    const seq = this.seq;
    const { layers } = this.snapshot();
    this.setState("saving");
    this.inflight = this.api.putLabels(this.cropId, layers, this.baseRevision, this.editCount);
    try {
      const answer = await this.inflight;
      this.baseRevision = answer.revision;
      this.savedSeq = seq;
      this.setState(this.dirty ? "unsaved" : "saved");
      this.saveLocal();
    } catch (err) {
      this.failed(err);
      throw err;
    } finally {
      this.inflight = null;
    }
  }

  failed(err) {
    if (err.transient) {
      this.setState("offline", err.status === 0 ? "" : err.message);
    } else if (err.status === 409 && /stale/i.test(err.message)) {
      this.setState("conflict", err.message);
      this.dispatchEvent(new CustomEvent("conflict", { detail: { message: err.message } }));
    } else if (err.status === 409 || err.status === 401 || err.status === 403) {
      this.setState("closed", err.message);
    } else {
      this.setState("error", err.message);
    }
  }

  /**
   * Save everything (local and server) before submit.
   *
   * @returns {Promise<void>}
   * @throws {Error} When the server does not have the labels afterwards.
   */
  async flush() {
    await this.saveLocal();
    if (this.dirty) await this.saveServer();
    if (this.dirty) throw new Error("Some edits could not be saved; try again.");
  }

  /**
   * Resume after a conflict with the server's revision as the new base (the
   * next save overwrites it with this browser's labels).
   *
   * @param {number} revision The server's current revision.
   */
  rebase(revision) {
    this.baseRevision = revision;
    this.seq++;
    this.setState("unsaved");
    this.saveLocal();
    this.tick();
  }

  /**
   * Start over from the server's labels (after a conflict, the user chose them).
   *
   * @param {number} revision Their revision.
   */
  reset(revision) {
    this.baseRevision = revision;
    this.savedSeq = this.seq;
    this.setState("saved");
    this.saveLocal();
  }

  /** Stop the timers (after submit); the local copy is discarded by the caller. */
  stop() {
    clearInterval(this.timer);
    clearTimeout(this.localTimer);
    window.removeEventListener("online", this.onOnline);
  }
}
