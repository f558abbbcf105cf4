/**
 * The expert review page (`/review/<stitch_id>`): the whole stitched image in
 * the canvas editor, with overlays of the stitch's seam conflicts, the cells
 * the crowd changed against the model's prediction and the crop borders.
 * The reviewer fixes labels (saved as review revisions: autosave every few
 * seconds, Save, Ctrl+S), then approves the image, or rejects it with a
 * reason and the crops it concerns picked on the image.
 *
 * Two reviewers on one image: a save from a stale revision is refused by the
 * server (409); the page stops saving and offers to reload.
 *
 * `window.looplabel` exposes `{ready, editor, saver, info, overlays, timings}`
 * for the browser console, end-to-end tests and benchmarks.
 *
 * @module pages/review
 */

import { Editor } from "../editor/app/editor.js";
import { featureLayers } from "../editor/labels.js";
import { buildNavigator } from "../editor/app/navigator.js";
import { buildSidePanel } from "../editor/app/panels.js";
import { buildHelpOverlay, buildStatusBar, buildToolbar } from "../editor/app/toolbar.js";
import { TaskSaver } from "./annotate/autosave.js";
import { PageUi } from "./annotate/screens.js";
import { ReviewOverlays } from "./review/overlays.js";
import { OVERLAY_KEYS, RejectPanel, buildReviewPanel } from "./review/panels.js";
import { ReviewApi } from "./review/review_api.js";

/** Milliseconds between autosaves while there are unsaved edits (a stitched image is large). */
const AUTOSAVE_MS = 10000;

/** Text of each save state in the top bar. */
export const SAVE_TEXT = Object.freeze({
  idle: "Not loaded",
  saved: "All changes saved",
  unsaved: "Unsaved changes",
  saving: "Saving…",
  offline: "Offline: not saved, retrying",
  conflict: "Not saved: another reviewer saved",
  closed: "Saving stopped",
  error: "Not saved",
  readonly: "Read-only",
  approved: "Approved",
  rejected: "Sent back to the crowd",
});

const root = document.getElementById("review");
const stitchId = Number(root.dataset.stitchId);
const ui = new PageUi(root);
const role = (name) => root.querySelector(`[data-role="${name}"]`);
const page = { ready: false, editor: null, saver: null, info: null, overlays: null, timings: {} };
let leaving = false; // set before a reload the page asked for itself
window.looplabel = page;

boot().catch((err) => {
  console.error(err);
  if (err.status === 401) {
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
    return;
  }
  ui.showScreen({
    title: err.status === 404 ? "No such image" : "Something went wrong", level: "error",
    text: sentence(err.message || err),
    actions: [{ label: "Back to the queue", onClick: () => window.location.assign("/review") },
      { label: "Reload", primary: true, onClick: () => window.location.reload() }],
  });
});

async function boot() {
  const api = new ReviewApi(stitchId);
  await api.me();
  const info = await api.info();
  page.info = info;
  const t0 = performance.now();
  const [channels, labels] = await Promise.all([api.channels(), api.labels()]);
  page.timings.fetch_ms = performance.now() - t0;
  page.timings.fetch_bytes = channels.bytes + labels.bytes;
  const [, height, width] = channels.shape;
  const readOnly = info.status !== "in_review";

  const editor = new Editor({
    stage: role("stage"), width, height, channels: channels.data, channelInfo: info.channels,
    layers: labels.layers, features: featureLayers(info.features), readOnly, serverTool: (name, body) => api.tool(name, body),
  });
  page.editor = editor;
  const overlays = new ReviewOverlays(editor, info.crops);
  page.overlays = overlays;
  const toast = (text, level) => ui.toast(text, level);
  const loadMask = async (name) => overlays.setMask(name, (await api.overlay(name)).data);
  const panel = buildReviewPanel(role, info, overlays, loadMask, toast);
  buildToolbar(role("toolbar"), editor);
  buildStatusBar(role("statusbar"), editor);
  buildSidePanel(role("side-editor"), editor);
  buildNavigator(editor);
  const toggleHelp = buildHelpOverlay(role("help"));
  role("help-button").addEventListener("click", () => toggleHelp());
  editor.addEventListener("help", () => toggleHelp());
  editor.addEventListener("message", (e) => ui.toast(e.detail.text, e.detail.level));
  editor.bindKeys(window);
  ui.setTaskLabel(`${width}×${height} px · round ${info.round} · ${info.crops.length} crops`);

  if (readOnly) {
    setSaveState(info.status === "approved" ? "approved" : info.status === "rejected" ? "rejected" : "readonly");
    ui.banner(`This image is ${info.status.replace("_", " ")}: you can look, but not change it.`, "info");
  } else {
    startReview({ api, info, editor, overlays, labels });
  }
  bindPageKeys(panel, () => page.save && page.save());
  ui.hideScreen();
  page.ready = true;
  root.dataset.ready = "true";
}

function startReview({ api, info, editor, overlays, labels }) {
  const saver = new TaskSaver({
    api: { putLabels: (_id, layers, baseRevision) => api.putLabels(layers, baseRevision) },
    cropId: stitchId, store: null, key: `review:${stitchId}`, intervalMs: AUTOSAVE_MS,
    meta: { baseRevision: labels.revision, dirty: false, editCount: 0, activeSeconds: 0 },
    snapshot: () => ({ layers: editor.layers, history: editor.history }),
  });
  page.saver = saver;
  const buttons = { save: role("save-button"), approve: role("approve"), reject: role("reject") };
  let busy = false;
  const syncButtons = () => {
    const stopped = ["conflict", "closed", "approved", "rejected"].includes(saver.state);
    buttons.save.disabled = busy || stopped || !saver.dirty || saver.state === "saving";
    buttons.approve.disabled = busy || stopped;
    buttons.reject.disabled = busy || stopped || reject.open;
  };
  const reject = new RejectPanel(role, info, overlays, editor, {
    toast: (text, level) => ui.toast(text, level),
    onConfirm: (reason, cropIds) => decide("rejected", { reason, cropIds }),
  });
  role("reject-cancel").addEventListener("click", () => syncButtons());

  setSaveState(saver.state, "", saver.baseRevision);
  saver.addEventListener("state", (e) => {
    setSaveState(e.detail.state, e.detail.message, e.detail.revision);
    syncButtons();
  });
  saver.addEventListener("state", refreshChangedOverlay(api, overlays, saver));
  saver.addEventListener("state", (e) => { if (e.detail.state === "closed") onClosed(editor, e.detail.message); });
  saver.addEventListener("conflict", (e) => onConflict(editor, e.detail.message));
  editor.addEventListener("edit", (e) => { saver.noteEdit(e.detail.kind === "edit"); syncButtons(); });
  window.addEventListener("beforeunload", (e) => {
    if (saver.dirty && !leaving && !["approved", "rejected"].includes(saver.state)) {
      e.preventDefault();
      e.returnValue = "";
    }
  });

  page.save = async () => {
    if (!saver.dirty) { ui.toast("Nothing to save: every change is on the server."); return; }
    try {
      await saver.saveServer();
    } catch { /* the save state and its dialogs say what happened */ }
  };
  buttons.save.addEventListener("click", () => page.save());
  buttons.reject.addEventListener("click", () => { reject.show(); syncButtons(); });
  buttons.approve.addEventListener("click", () => decide("approved"));
  syncButtons();

  async function decide(decision, rejection = null) {
    const n = rejection ? rejection.cropIds.length : 0;
    const question = decision === "approved"
      ? { title: "Approve this image?",
        text: `Its labels${saver.dirty ? " (with your unsaved changes, saved first)" : ""} become ground truth for the next training round.`,
        actions: [{ value: "yes", label: "Approve", primary: true }, { value: "no", label: "Keep reviewing" }] }
      : { title: `Send ${n} crop${n === 1 ? "" : "s"} back to the crowd?`,
        text: `New annotators redo ${n === 1 ? "it" : "them"} from the current labels and see your reason; the image comes back here once ${n === 1 ? "it is" : "they are"} stitched again.`,
        actions: [{ value: "yes", label: "Reject", primary: true }, { value: "no", label: "Keep reviewing" }] };
    if (await ask(question) !== "yes") return;
    busy = true;
    syncButtons();
    try {
      await saver.flush();
      if (decision === "approved") await api.approve(saver.baseRevision);
      else await api.reject(rejection.reason, rejection.cropIds);
      saver.stop();
      reject.close();
      editor.setReadOnly(true);
      saver.setState(decision);
      await showDone(api, info, decision, n);
    } catch (err) {
      if (saver.state !== "conflict" && saver.state !== "closed") {
        ui.toast(`${decision === "approved" ? "Not approved" : "Not rejected"}: ${err.message}`, "error");
      }
    } finally {
      busy = false;
      syncButtons();
    }
  }
}

/** After a save, re-fetch the changed-cells mask when it is loaded (repaints only what differs). */
function refreshChangedOverlay(api, overlays, saver) {
  let shownRevision = saver.baseRevision;
  return async (e) => {
    if (e.detail.state !== "saved" || e.detail.revision === shownRevision || !overlays.masks.changed) return;
    shownRevision = e.detail.revision;
    try {
      overlays.setMask("changed", (await api.overlay("changed")).data);
    } catch (err) {
      ui.toast(`The changed-cells overlay could not be refreshed: ${err.message}`, "error");
    }
  };
}

async function onConflict(editor, message) {
  editor.setReadOnly(true);
  ui.banner("Another reviewer saved a newer revision: reload to continue.", "warn");
  const choice = await ask({
    title: "Another reviewer saved this image",
    text: `${sentence(message)} Reload to continue from their revision; the changes you made here since your last save are not kept.`,
    actions: [{ value: "reload", label: "Reload the image", primary: true }, { value: "stay", label: "Stay here (read-only)" }],
  });
  if (choice === "reload") {
    leaving = true;
    window.location.reload();
  }
}

async function onClosed(editor, message) {
  editor.setReadOnly(true);
  const choice = await ask({
    title: "Saving has stopped",
    text: `${sentence(message)} Changes since your last save are not kept.`,
    actions: [{ value: "queue", label: "Back to the queue", primary: true }, { value: "stay", label: "Stay here" }],
  });
  if (choice === "queue") {
    leaving = true;
    window.location.assign("/review");
  }
}

async function showDone(api, info, decision, nCrops) {
  let next = null;
  try {
    next = (await api.queue(info.project_id)).find((item) => item.stitch_id !== stitchId) || null;
  } catch { /* the queue link still works */ }
  const actions = [{ label: "Back to the queue", onClick: () => window.location.assign("/review") }];
  if (next) actions.push({ label: `Next image: ${next.image_name}`, primary: true, onClick: () => window.location.assign(`/review/${next.stitch_id}`) });
  ui.showScreen(decision === "approved"
    ? { title: "Image approved", text: `${info.image_name} is ground truth for the next training round.`, actions }
    : { title: "Sent back to the crowd", text: `${nCrops} crop${nCrops === 1 ? "" : "s"} of ${info.image_name} went back with your reason; the image returns to the queue once they are stitched again.`, actions });
  root.dataset.decision = decision;
}

/** Ask in the page's dialog (a question already open is dismissed first). */
function ask(question) {
  const dialog = role("dialog");
  if (dialog.open) dialog.close();
  return ui.ask(question);
}

function setSaveState(state, detail = "", revision = undefined) {
  const el = role("save");
  el.dataset.state = state;
  const base = SAVE_TEXT[state] || state;
  role("save-text").textContent = state === "saved" && revision !== undefined ? `${base} · revision ${revision}` : base;
  el.title = detail || base;
}

function bindPageKeys(panel, save) {
  window.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t instanceof Element && (t.closest("dialog") || t.matches("input, textarea, select, [contenteditable]"))) return;
    const key = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && !e.altKey && key === "s") {
      e.preventDefault();
      save();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || e.shiftKey) return;
    const name = OVERLAY_KEYS[key];
    if (name) {
      e.preventDefault();
      panel.toggle(name);
    }
  });
}

/** The server's message as a sentence: capital first letter, final stop. */
function sentence(text) {
  const t = String(text || "").trim();
  const capital = t.charAt(0).toUpperCase() + t.slice(1);
  return !t || /[.!?]$/.test(t) ? capital : `${capital}.`;
}
