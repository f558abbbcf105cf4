/**
 * The review page's side panels: the image's figures with the overlay
 * switches, and the rejection form (crops picked on the image + a reason).
 * Elements come from review.html (found by `data-role`); this module wires
 * them to a {@link ReviewOverlays}.
 *
 * @module pages/review/panels
 */

import { OVERLAYS } from "./overlays.js";

/** Page keys of the overlay switches (unused by the editor's key map). */
export const OVERLAY_KEYS = Object.freeze({ c: "conflicts", d: "changed", u: "uncertain", p: "crops" });

const OVERLAY_TITLES = Object.freeze({ conflicts: "seam conflicts", changed: "changed cells",
  uncertain: "model uncertainty" });

const NUMBER = new Intl.NumberFormat("en");

/**
 * Fill in the figures and wire the overlay switches.
 *
 * @param {(role: string) => HTMLElement} role Element of a `data-role`.
 * @param {object} info The stitch (`GET /api/review/stitches/<id>`).
 * @param {import("./overlays.js").ReviewOverlays} overlays
 * @param {(name: "conflicts"|"changed") => Promise<void>} loadMask Fetches a
 *   mask into `overlays` (called once, on the first switch-on).
 * @param {(text: string, level?: string) => void} toast
 * @returns {{toggle: (name: string, on?: boolean) => Promise<void>, sync: () => void}}
 */
export function buildReviewPanel(role, info, overlays, loadMask, toast) {
  role("stat-cells").textContent = NUMBER.format(info.n_cells);
  role("stat-conflicts").textContent = `${NUMBER.format(info.n_conflict_pixels)} px`;
  role("stat-changed").textContent = NUMBER.format(info.n_changed_cells);
  const gold = info.crops.filter((c) => c.is_gold).length;
  const unchecked = info.crops.filter((c) => c.source === "model").length;
  const notes = [gold ? `${gold} gold` : "", unchecked ? `${unchecked} unchecked: model labels` : ""].filter(Boolean);
  role("stat-crops").textContent = `${info.crops.length}${notes.length ? ` (${notes.join(", ")})` : ""}`;
  const reopened = info.crops.filter((c) => c.reopen_reason);
  if (reopened.length) {
    const note = role("reopened");
    note.hidden = false;
    note.textContent = `${reopened.length} crop${reopened.length === 1 ? " was" : "s were"} sent back before: “${reopened[0].reopen_reason}”`;
  }
  const boxes = new Map(OVERLAYS.map((name) => [name, role(`overlay-${name}`)]));
  const loading = new Map();
  const sync = () => {
    for (const [name, box] of boxes) {
      box.checked = overlays.visible[name];
      box.closest("label").dataset.state = loading.has(name) ? "loading" : "";
    }
  };
  const toggle = async (name, on = !overlays.visible[name]) => {
    if (on && name !== "crops" && !overlays.masks[name]) {
      if (!loading.has(name)) loading.set(name, loadMask(name));
      sync();
      try {
        await loading.get(name);
      } catch (err) {
        toast(`The ${OVERLAY_TITLES[name]} overlay did not load: ${err.message}`, "error");
        on = false;
      } finally {
        loading.delete(name);
      }
    }
    overlays.setVisible(name, on);
    sync();
  };
  for (const [name, box] of boxes) box.addEventListener("change", () => { toggle(name, box.checked); box.blur(); });
  sync();
  return { toggle, sync };
}

/**
 * The rejection form: while open, clicks on the image pick crops (gold crops
 * are refused), the reason is typed, Confirm sends them back.
 */
export class RejectPanel {
  /**
   * @param {(role: string) => HTMLElement} role
   * @param {object} info The stitch.
   * @param {import("./overlays.js").ReviewOverlays} overlays
   * @param {import("../../editor/app/editor.js").Editor} editor
   * @param {object} hooks
   * @param {(text: string, level?: string) => void} hooks.toast
   * @param {(reason: string, cropIds: number[]) => void} hooks.onConfirm
   */
  constructor(role, info, overlays, editor, { toast, onConfirm }) {
    this.panel = role("reject-panel");
    this.chips = role("reject-crops");
    this.reason = role("reject-reason");
    this.confirm = role("reject-confirm");
    this.count = role("reject-count");
    this.info = info;
    this.overlays = overlays;
    this.editor = editor;
    this.toast = toast;
    this.open = false;
    role("reject-cancel").addEventListener("click", () => this.close());
    this.reason.addEventListener("input", () => this.sync());
    this.confirm.addEventListener("click", () => {
      if (!this.ready) return;
      onConfirm(this.reason.value.trim(), this.overlays.selectedIds());
    });
    editor.pointerFilter = (type, event, point) => this.onPointer(type, point);
    this.sync();
  }

  /** Whether a reason and at least one crop are given. */
  get ready() { return this.overlays.selected.size > 0 && this.reason.value.trim().length > 0; }

  /** Show the form and start picking crops. */
  show() {
    this.open = true;
    this.panel.hidden = false;
    this.editor.finishGesture();
    this.editor.setTool("select");
    this.overlays.setPicking(true);
    this.panel.scrollIntoView({ block: "nearest" });
    this.sync();
    this.toast("Click the crops that need another pass, then give the reason.");
  }

  /** Hide the form; the picked crops are forgotten. */
  close() {
    this.open = false;
    this.panel.hidden = true;
    this.overlays.setPicking(false);
    this.sync();
  }

  onPointer(type, point) {
    if (!this.open) return false;
    if (type === "move") this.overlays.hoverAt(point);
    if (type === "leave") this.overlays.hoverAt(null);
    if (type !== "down") return false;
    try {
      const hit = this.overlays.toggleAt(point.y, point.x);
      if (!hit) this.toast("Click inside the image to pick a crop.");
    } catch (err) {
      this.toast(err.message, "error");
    }
    this.sync();
    return true;
  }

  /** Redraw the chips and the button state. */
  sync() {
    const ids = this.overlays.selectedIds();
    const byId = new Map(this.info.crops.map((c) => [c.id, c]));
    this.chips.replaceChildren();
    if (ids.length === 0) {
      const none = document.createElement("span");
      none.className = "ll-muted";
      none.textContent = "No crop picked yet.";
      this.chips.appendChild(none);
    }
    for (const id of ids) {
      const crop = byId.get(id);
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "ll-chip";
      chip.dataset.cropId = String(id);
      chip.title = `Unpick crop #${crop.index}`;
      const [y0, x0, y1, x1] = crop.bbox;
      chip.textContent = `#${crop.index} · ${y0},${x0}–${y1},${x1} ×`;
      chip.addEventListener("click", () => {
        this.overlays.selected.delete(id);
        this.editor.view.invalidateOverlay();
        this.sync();
      });
      this.chips.appendChild(chip);
    }
    this.count.textContent = ids.length === 1 ? "1 crop" : `${ids.length} crops`;
    this.confirm.disabled = !this.ready;
  }
}
