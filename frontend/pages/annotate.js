/**
 * The crowd annotation page (`/annotate/<project>?<platform params>`).
 *
 * Boot: read the task link's parameters (address bar, or this tab's
 * sessionStorage after a reload), lease a task, strip the parameters from the
 * address bar, fetch the crop's channels and labels, restore unsaved work and
 * undo history from IndexedDB when they belong to the same revision, then run
 * the editor with autosave. Submit saves, asks the server to freeze the task
 * and performs the platform's completion handshake.
 *
 * `window.looplabel` exposes `{ready, editor, saver, task, timings}` for the
 * browser console, end-to-end tests and benchmarks. The assignment token
 * stays in the API client's memory: never in the URL, storage or cookies.
 *
 * @module pages/annotate
 */

import { History, HistoryStore } from "../editor/history.js";
import { Editor } from "../editor/app/editor.js";
import { featureLayers } from "../editor/labels.js";
import { buildNavigator } from "../editor/app/navigator.js";
import { buildSidePanel } from "../editor/app/panels.js";
import { buildHelpOverlay, buildStatusBar, buildToolbar } from "../editor/app/toolbar.js";
import { TaskSaver } from "./annotate/autosave.js";
import { performCompletion } from "./annotate/completion.js";
import { CrowdApi } from "./annotate/crowd_api.js";
import { PageUi } from "./annotate/screens.js";
import {
  forgetTaskParams, readResume, readTaskParams, rememberResume, rememberTaskParams, stripTaskParams,
} from "./annotate/task_link.js";

/** Seconds without input after which the annotator no longer counts as active. */
const IDLE_AFTER_S = 60;

const root = document.getElementById("annotate");
const projectId = Number(root.dataset.projectId);
const ui = new PageUi(root);
const page = { ready: false, editor: null, saver: null, task: null, timings: {} };
let taskParams = null; // in memory only, to lease another task after submit
window.looplabel = page;

boot().catch((err) => {
  console.error(err);
  ui.showScreen({ title: "Something went wrong", text: `${sentence(err.message || err)} Reload the page to try again; your edits are kept in this browser.`, level: "error",
    actions: [{ label: "Reload", primary: true, onClick: () => window.location.reload() }] });
});

async function boot() {
  const { params } = readTaskParams(projectId);
  if (!params) {
    ui.showScreen({ title: "Open this task from your platform", level: "error",
      text: "This page needs the task link you were given (it names you to the project, e.g. ?worker=…). Go back to the study or HIT and open it from there." });
    return;
  }
  taskParams = params;
  const api = new CrowdApi(projectId);
  let lease;
  try {
    lease = await api.lease(params, readResume(projectId));
    rememberResume(projectId, lease.resume);
  } catch (err) {
    showLeaseError(err);
    return;
  } finally {
    stripTaskParams(); // after the lease call, whatever its answer
  }
  const task = lease.task;
  page.task = task;
  const readOnly = lease.preview || task.read_only;
  const t0 = performance.now();
  const [channels, labels] = await Promise.all([api.channels(task.crop_id), api.labels(task.crop_id)]);
  page.timings.fetch_ms = performance.now() - t0;
  page.timings.fetch_bytes = channels.bytes + labels.bytes;
  const [, height, width] = channels.shape;

  const key = `assignment:${task.assignment_id}`;
  let store = null;
  let restored = null;
  if (!readOnly && task.assignment_id !== null) {
    store = await HistoryStore.open().catch(() => null);
    if (store) restored = await restoreLocal(store, key, task, labels, width, height);
    else ui.toast("This browser cannot keep a local copy (IndexedDB is blocked); work is saved to the server every few seconds.", "error");
  }
  const editor = new Editor({
    stage: ui.roles.stage, width, height, channels: channels.data, channelInfo: task.channels,
    layers: restored ? restored.layers : labels.layers, features: featureLayers(task.features),
    history: restored ? restored.history : new History(),
    readOnly,
    serverTool: (name, body) => api.tool(task.crop_id, name, body),
  });
  page.editor = editor;
  buildToolbar(ui.roles.toolbar, editor);
  buildStatusBar(ui.roles.statusbar, editor);
  buildSidePanel(ui.roles["side-editor"], editor);
  buildNavigator(editor);
  const toggleHelp = buildHelpOverlay(ui.roles.help);
  ui.roles["help-button"].addEventListener("click", () => toggleHelp());
  editor.addEventListener("help", () => toggleHelp());
  editor.addEventListener("message", (e) => ui.toast(e.detail.text, e.detail.level));
  editor.bindKeys(window);
  blockHostScrolling();

  ui.roles.instructions.innerHTML = task.instructions_html || "<p>Correct the outline of every cell.</p>"; // server-rendered Markdown, sanitised (allowlist)
  ui.setTaskLabel(`Crop #${task.crop_id} · ${height}×${width} px`);
  if (lease.preview) ui.banner("Preview: accept the task on your platform to start annotating.", "warn");
  else if (task.read_only) ui.banner("This task is finished: you can look, but not edit.", "info");
  else if (task.reopen_reason) ui.banner(`Reopened by the reviewer: ${task.reopen_reason}`, "warn");

  if (readOnly) {
    ui.setSaveState("readonly");
  } else {
    startSaving({ api, task, editor, store, key, restored, labels });
  }
  ui.hideScreen();
  page.ready = true;
  root.dataset.ready = "true";
}

function showLeaseError(err) {
  const titles = {
    0: "Cannot reach the server", 400: "This task link is not valid", 403: "You cannot take tasks in this project",
    404: "No task for you right now", 409: "This task cannot be opened", 429: "Too many tasks were requested",
  };
  const transient = err.status === 0 || err.status === 429 || err.status >= 500;
  ui.showScreen({
    title: titles[err.status] || "The task could not be opened",
    text: sentence(err.message),
    level: err.status === 404 ? "info" : "error",
    actions: transient ? [{ label: "Try again", primary: true, onClick: () => window.location.reload() }] : [],
  });
}

/**
 * The browser's copy of this assignment, when it can be used.
 *
 * @returns {Promise<{layers: object[], history: History, meta: object}|null>}
 */
async function restoreLocal(store, key, task, server, width, height) {
  let saved;
  try {
    saved = await store.load(key);
  } catch (err) {
    await store.discard(key).catch(() => {});
    ui.toast(`A damaged copy of this task in the browser was discarded (${err.message}).`, "error");
    return null;
  }
  if (!saved) return null;
  const fits = saved.meta && saved.meta.cropId === task.crop_id && saved.layers.length === server.layers.length
    && saved.layers.every((l) => l.width === width && l.height === height);
  if (!fits) {
    await store.discard(key);
    return null;
  }
  if (saved.meta.baseRevision === server.revision) {
    if (saved.meta.dirty) ui.toast("Restored your unsaved changes and undo history from this browser.");
    return saved;
  }
  if (!saved.meta.dirty) {
    await store.discard(key); // the server is newer and nothing here was unsaved
    return null;
  }
  const choice = await ui.ask({
    title: "This task changed on the server",
    text: `This browser keeps unsaved changes made on revision ${saved.meta.baseRevision}, but the server now has `
      + `revision ${server.revision} (saved from another window). Which version do you want to continue with?`,
    actions: [
      { value: "mine", label: "Keep this browser's changes", primary: true },
      { value: "server", label: "Use the server's version" },
    ],
  });
  if (choice === "server") {
    await store.discard(key);
    return null;
  }
  return { ...saved, meta: { ...saved.meta, baseRevision: server.revision, dirty: true } };
}

function startSaving({ api, task, editor, store, key, restored, labels }) {
  const meta = restored ? restored.meta : { baseRevision: labels.revision, dirty: false, editCount: 0, activeSeconds: 0 };
  const saver = new TaskSaver({
    api, cropId: task.crop_id, store, key, meta,
    snapshot: () => ({ layers: editor.layers, history: editor.history }),
  });
  page.saver = saver;
  ui.setSaveState(saver.state, "", saver.baseRevision);
  saver.addEventListener("state", (e) => ui.setSaveState(e.detail.state, e.detail.message, e.detail.revision));
  saver.addEventListener("state", (e) => {
    if (e.detail.state === "closed") onClosed(e.detail.message);
  });
  saver.addEventListener("conflict", (e) => resolveConflict(api, task, editor, saver, e.detail.message));
  ui.roles.save.addEventListener("click", () => {
    if (saver.state === "conflict") resolveConflict(api, task, editor, saver, saver.message);
  });
  editor.addEventListener("edit", (e) => saver.noteEdit(e.detail.kind === "edit"));
  if (restored && restored.meta.dirty) saver.tick();
  window.addEventListener("pagehide", () => saver.saveLocal());
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") saver.saveLocal(); });
  const clock = startActivityClock(saver);

  const submit = ui.roles.submit;
  submit.disabled = false;
  submit.addEventListener("click", async () => {
    const answer = await ui.ask({
      title: "Submit this crop?",
      text: `You made ${saver.editCount} edit${saver.editCount === 1 ? "" : "s"}. After submitting you cannot change this crop any more.`,
      actions: [{ value: "submit", label: "Submit", primary: true }, { value: "cancel", label: "Keep editing" }],
    });
    if (answer !== "submit") return;
    submit.disabled = true;
    try {
      await saver.flush();
      const result = await api.submit(task.crop_id, { active_seconds: Math.round(saver.activeSeconds), edit_count: saver.editCount });
      saver.stop();
      clearInterval(clock);
      editor.setReadOnly(true);
      if (store) await store.discard(key).catch(() => {});
      forgetTaskParams(projectId);
      rememberResume(projectId, null);
      ui.setSaveState("submitted");
      const again = task.platform === "generic" && result.completion.kind === "post_message";
      performCompletion(result.completion, result.assignment_id, (view) => ui.showScreen({
        ...view,
        actions: again ? [{ label: "Annotate another crop", onClick: () => annotateAnother() }] : [],
      }));
    } catch (err) {
      submit.disabled = false;
      ui.toast(`Not submitted: ${err.message}`, "error");
    }
  });
}

async function resolveConflict(api, task, editor, saver, message) {
  const choice = await ui.ask({
    title: "This task was saved from another window",
    text: `${sentence(message)} Your changes are still kept in this browser.`,
    actions: [
      { value: "mine", label: "Overwrite with my version", primary: true },
      { value: "server", label: "Load the server's version" },
    ],
  });
  try {
    if (choice === "server") {
      const fresh = await api.labels(task.crop_id);
      editor.replaceLayers(fresh.layers);
      saver.reset(fresh.revision);
    } else if (choice === "mine") {
      const info = await api.task(task.crop_id);
      saver.rebase(info.revision);
    }
  } catch (err) {
    ui.toast(`Could not resolve the conflict: ${err.message}`, "error");
  }
}

async function onClosed(message) {
  page.editor.setReadOnly(true);
  const choice = await ui.ask({
    title: "Saving has stopped",
    text: `${sentence(message)} Your latest changes are kept in this browser.`,
    actions: [{ value: "reload", label: "Reload the task", primary: true }, { value: "stay", label: "Stay here" }],
  });
  if (choice === "reload") window.location.reload();
}

function annotateAnother() {
  rememberTaskParams(projectId, taskParams);
  window.location.reload();
}

function sentence(text) {
  const t = String(text || "").trim();
  return !t || /[.!?]$/.test(t) ? t : `${t}.`;
}

function startActivityClock(saver) {
  let last = performance.now();
  const bump = () => { last = performance.now(); };
  for (const type of ["pointerdown", "pointermove", "keydown", "wheel"]) window.addEventListener(type, bump, { passive: true });
  return setInterval(() => {
    if (document.visibilityState === "visible" && performance.now() - last < IDLE_AFTER_S * 1000) saver.activeSeconds += 1;
  }, 1000);
}

const SCROLL_KEYS = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "PageUp", "PageDown", "Home", "End"]);

/** The wheel and scrolling keys over this page never scroll it or the page that embeds it. */
function blockHostScrolling() {
  const inScrollable = (target) => target instanceof Element && Boolean(target.closest(".ll-scrollable"));
  window.addEventListener("wheel", (e) => {
    if (!inScrollable(e.target)) e.preventDefault();
  }, { passive: false });
  window.addEventListener("keydown", (e) => {
    const onPage = e.target === document.body || e.target === document.documentElement;
    if (onPage && SCROLL_KEYS.has(e.key)) e.preventDefault();
  });
}
