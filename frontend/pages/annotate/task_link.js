/**
 * The task link's platform parameters (`?worker=...`, `?PROLIFIC_PID=...`,
 * MTurk's `assignmentId`...). The page reads them from the address bar,
 * keeps them in sessionStorage (so a reload of this tab can lease the same
 * task again) and strips them from the address bar. The assignment token is
 * never stored: it lives in memory only. The lease's resume secret is kept in
 * the same tab's sessionStorage: it proves to the server that a reload comes
 * from the browser that holds the task (the worker id alone does not).
 *
 * @module pages/annotate/task_link
 */

const KEY_PREFIX = "looplabel:task-link:";
const RESUME_PREFIX = "looplabel:resume:";

function storageKey(projectId) {
  return `${KEY_PREFIX}${projectId}`;
}

/**
 * The task link's parameters for this tab.
 *
 * @param {number} projectId
 * @param {{search: string}} [loc=window.location]
 * @param {Storage} [storage=window.sessionStorage]
 * @returns {{params: Record<string, string>|null, fromUrl: boolean}} null when
 *   neither the address bar nor this tab's storage has any.
 */
export function readTaskParams(projectId, loc = window.location, storage = safeSessionStorage()) {
  const fromUrl = Object.fromEntries(new URLSearchParams(loc.search));
  if (Object.keys(fromUrl).length > 0) {
    try {
      storage?.setItem(storageKey(projectId), JSON.stringify(fromUrl));
    } catch { /* storage full or blocked: a reload will ask for the link again */ }
    return { params: fromUrl, fromUrl: true };
  }
  try {
    const stored = storage?.getItem(storageKey(projectId));
    const params = stored ? JSON.parse(stored) : null;
    if (params && typeof params === "object" && Object.values(params).every((v) => typeof v === "string")) {
      return { params, fromUrl: false };
    }
  } catch { /* unreadable: treat as absent */ }
  return { params: null, fromUrl: false };
}

/** Remove the query string from the address bar (no reload, no history entry). */
export function stripTaskParams() {
  if (window.location.search) {
    window.history.replaceState(window.history.state, "", window.location.pathname + window.location.hash);
  }
}

/**
 * Keep parameters for this tab again (to lease another task after submit).
 *
 * @param {number} projectId
 * @param {Record<string, string>} params
 * @param {Storage} [storage=window.sessionStorage]
 */
export function rememberTaskParams(projectId, params, storage = safeSessionStorage()) {
  try {
    storage?.setItem(storageKey(projectId), JSON.stringify(params));
  } catch { /* the reload will ask for the link */ }
}

/**
 * Forget this tab's parameters (after submit).
 *
 * @param {number} projectId
 * @param {Storage} [storage=window.sessionStorage]
 */
export function forgetTaskParams(projectId, storage = safeSessionStorage()) {
  try {
    storage?.removeItem(storageKey(projectId));
  } catch { /* nothing to forget */ }
}

/**
 * The resume secret of this tab's last lease in the project, or null.
 *
 * @param {number} projectId
 * @param {Storage} [storage=window.sessionStorage]
 * @returns {string|null}
 */
export function readResume(projectId, storage = safeSessionStorage()) {
  try {
    const value = storage?.getItem(`${RESUME_PREFIX}${projectId}`);
    return typeof value === "string" && /^[0-9a-f]{1,128}$/.test(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * Keep (or, with null, forget) the resume secret of this tab's lease.
 *
 * @param {number} projectId
 * @param {string|null} resume
 * @param {Storage} [storage=window.sessionStorage]
 */
export function rememberResume(projectId, resume, storage = safeSessionStorage()) {
  try {
    if (resume) storage?.setItem(`${RESUME_PREFIX}${projectId}`, resume);
    else storage?.removeItem(`${RESUME_PREFIX}${projectId}`);
  } catch { /* blocked: a reload gets a new task instead of this one */ }
}

function safeSessionStorage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // blocked (third-party storage settings): reloads need the link again
  }
}
