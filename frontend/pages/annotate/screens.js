/**
 * The annotate page's chrome: full-page screens (loading, errors, finished),
 * the save-state indicator, the banner, toasts and modal questions. Elements
 * are found by `data-role` inside the page root (see annotate.html).
 *
 * @module pages/annotate/screens
 */

/** Text of each save state in the top bar. */
export const SAVE_TEXT = Object.freeze({
  idle: "Not loaded",
  saved: "All changes saved",
  unsaved: "Unsaved changes (kept in this browser)",
  saving: "Saving…",
  offline: "Offline: changes kept in this browser, retrying",
  conflict: "Not saved: the task changed elsewhere",
  closed: "Saving stopped",
  error: "Not saved",
  readonly: "Read-only",
  submitted: "Submitted",
});

/** How long a message stays, by level (ms); the × takes it away sooner. */
export const TOAST_MS = Object.freeze({ info: 4000, error: 8000 });

/** The page's chrome. */
export class PageUi {
  /** @param {HTMLElement} root The `#annotate` element. */
  constructor(root) {
    this.root = root;
    this.roles = new Proxy({}, { get: (_, role) => root.querySelector(`[data-role="${String(role)}"]`) });
  }

  /**
   * Show a full-page screen over the editor.
   *
   * @param {object} view
   * @param {string} view.title
   * @param {string} [view.text]
   * @param {string|null} [view.code] Shown large and selectable (completion code).
   * @param {{href: string, label: string}} [view.link] Opens in the top window.
   * @param {{label: string, onClick: () => void, primary?: boolean}[]} [view.actions]
   * @param {"info"|"error"} [view.level="info"]
   */
  showScreen({ title, text = "", code = null, link = null, actions = [], level = "info" }) {
    const r = this.roles;
    r.screen.hidden = false;
    r.screen.dataset.level = level;
    r["screen-title"].textContent = title;
    r["screen-text"].textContent = text;
    r["screen-code"].hidden = !code;
    r["screen-code"].textContent = code || "";
    const box = r["screen-actions"];
    box.replaceChildren();
    if (link) {
      const a = document.createElement("a");
      a.href = link.href;
      a.target = "_top";
      a.rel = "noopener";
      a.className = "ll-button ll-primary";
      a.textContent = link.label;
      box.appendChild(a);
    }
    for (const action of actions) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `ll-button ${action.primary ? "ll-primary" : "ll-ghost"}`;
      b.textContent = action.label;
      b.addEventListener("click", action.onClick);
      box.appendChild(b);
    }
  }

  hideScreen() {
    this.roles.screen.hidden = true;
  }

  /**
   * Top bar task description.
   *
   * @param {string} text
   */
  setTaskLabel(text) {
    this.roles.crop.textContent = text;
  }

  /**
   * Banner in the top bar (preview, read-only, reopened crops).
   *
   * @param {string|null} text null hides it.
   * @param {"info"|"warn"} [level="info"]
   */
  banner(text, level = "info") {
    const b = this.roles.banner;
    b.hidden = !text;
    b.textContent = text || "";
    b.title = text || ""; // the bar wraps the whole text; the tooltip repeats it
    b.dataset.level = level;
  }

  /**
   * Save indicator.
   *
   * @param {string} state Key of {@link SAVE_TEXT}.
   * @param {string} [detail] Server message (tooltip, and shown for errors).
   * @param {number} [revision]
   */
  setSaveState(state, detail = "", revision = undefined) {
    const el = this.roles.save;
    el.dataset.state = state;
    const base = SAVE_TEXT[state] || state;
    const rev = state === "saved" && revision ? ` · revision ${revision}` : "";
    this.roles["save-text"].textContent = base + rev;
    el.title = detail || base;
  }

  /**
   * Short message over the status bar (never over the image): one at a time, the newest replacing
   * the one shown; it goes after {@link TOAST_MS} or when its × is pressed.
   *
   * @param {string} text
   * @param {"info"|"error"} [level="info"]
   */
  toast(text, level = "info") {
    const box = this.roles.toasts;
    const item = document.createElement("div");
    item.className = `ll-toast ll-toast-${level}`;
    item.setAttribute("role", level === "error" ? "alert" : "status");
    const message = document.createElement("span");
    message.className = "ll-toast-text";
    message.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "ll-toast-close";
    close.title = "Dismiss";
    close.setAttribute("aria-label", "Dismiss this message");
    close.textContent = "×";
    item.append(message, close);
    const timer = setTimeout(() => item.remove(), TOAST_MS[level] || TOAST_MS.info);
    close.addEventListener("click", () => {
      clearTimeout(timer);
      item.remove();
    });
    box.replaceChildren(item);
  }

  /**
   * Ask a question in a modal dialog.
   *
   * @param {object} question
   * @param {string} question.title
   * @param {string} question.text
   * @param {{value: string, label: string, primary?: boolean}[]} question.actions
   * @returns {Promise<string>} The chosen action's value ("" when dismissed with Esc).
   */
  ask({ title, text, actions }) {
    const r = this.roles;
    const dialog = r.dialog;
    r["dialog-title"].textContent = title;
    r["dialog-text"].textContent = text;
    const box = r["dialog-actions"];
    box.replaceChildren();
    for (const action of actions) {
      const b = document.createElement("button");
      b.value = action.value;
      b.className = `ll-button ${action.primary ? "ll-primary" : "ll-ghost"}`;
      b.textContent = action.label;
      b.dataset.value = action.value;
      box.appendChild(b);
    }
    return new Promise((resolve) => {
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue || ""), { once: true });
      dialog.showModal();
      const primary = box.querySelector(".ll-primary");
      if (primary) primary.focus();
    });
  }
}
