/**
 * The editor controller: one image (channels + label layers), its history,
 * the current tool and selection, and the canvas that shows them. Pages (the
 * crowd annotate page, the review page) create one, listen to its events and
 * put their own chrome around it; the controller never talks to a server
 * itself: server tools go through the `serverTool` function the page passes.
 *
 * Events (`editor.addEventListener(type, e => e.detail)`):
 * - `edit`     `{kind: "edit"|"undo"|"redo", entry}` after any change of the labels;
 * - `state`    tool, selection, brush size, display or busy state changed;
 * - `hover`    `{y, x, id}` or null;
 * - `tool`     `{name, answer}` after a server tool answered (threshold: the `levels` it used);
 * - `message`  `{text, level: "info"|"error"}` for the page to show;
 * - `help`     the user asked for the shortcut list (?).
 *
 * @module editor/app/editor
 */

import { History } from "../history.js";
import { trackCellAreas } from "../cell_areas.js";
import { MAX_LABEL_ID, getLabel, growBbox, maxLabelId } from "../labels.js";
import { resolveKey } from "../keys.js";
import { DEFAULT_RADII, MAX_RADIUS } from "../paint_mode.js";
import { DisplayState } from "./display.js";
import { COMMANDS } from "./commands.js";
import { handlePointer, drawOverlay, TOOL_CURSORS } from "./gestures.js";
import { AUTOFIT_MARGIN_PX, cellBox, runServerTool } from "./server_tools.js";
import { CanvasView } from "./view.js";

/** Pointer tools, in toolbar order. */
export const POINTER_TOOLS = Object.freeze(["select", "brush", "eraser", "fill", "trim", "threshold", "watershed", "cut",
  "addCell"]);
/** Tools that change labels (disabled when read-only). */
const EDITING_TOOLS = new Set(["brush", "eraser", "fill", "trim", "threshold", "watershed", "cut", "addCell"]);
export const MAX_BRUSH_RADIUS_UI = MAX_RADIUS;

/** Canvas label editor for one image. */
export class Editor extends EventTarget {
  /**
   * @param {object} options
   * @param {HTMLElement} options.stage Element the canvas fills (positioned, sized by CSS).
   * @param {number} options.width Image width, pixels.
   * @param {number} options.height Image height, pixels.
   * @param {Uint8Array} options.channels `C * h * w` uint8 display values, (C, h, w) row-major.
   * @param {{name: string, color?: string}[]} options.channelInfo C channel names and colours.
   * @param {{width: number, height: number, data: Int32Array}[]} options.layers Label
   *   layers indexed by feature (0 whole_cell, 1 nuclear); edited in place.
   * @param {number[]} [options.features=[0, 1]] The layers the project annotates (the others are
   *   kept but neither shown nor offered); the first is shown at the start.
   * @param {History} [options.history] Restored history (default: empty).
   * @param {boolean} [options.readOnly=false] View only: editing tools are refused.
   * @param {(tool: string, body: object) => Promise<object>} [options.serverTool]
   *   Runs a server tool; resolves with the server's JSON answer.
   */
  constructor({ stage, width, height, channels, channelInfo, layers, features = [0, 1], history = new History(), readOnly = false, serverTool = null }) {
    super();
    if (channels.length !== channelInfo.length * width * height) {
      throw new Error(`the image holds ${channels.length} values but ${channelInfo.length} channels of ${height}x${width} need ${channelInfo.length * width * height}`);
    }
    for (const layer of layers) {
      if (layer.width !== width || layer.height !== height) {
        throw new Error(`a label layer is ${layer.height}x${layer.width} but the image is ${height}x${width}`);
      }
    }
    this.width = width;
    this.height = height;
    this.channels = channels;
    this.layers = layers;
    this.history = history;
    /** Per layer, an upper bound of the ids in use (kept up to date by every edit). */
    this.maxIds = layers.map(maxLabelId);
    this.readOnly = readOnly;
    this.serverTool = serverTool;
    /** Indexes of the layers the project annotates (the layer panel and X offer only these). */
    this.features = features;
    this.display = new DisplayState(channelInfo, { feature: features[0] });
    this.tool = "select"; // a first click selects; painting is a choice (B, or N for a new cell)
    /** Disc radius (px) of the brush and of the eraser, each its own (see paint_mode.js). */
    this.radii = { ...DEFAULT_RADII };
    /** Overwrite mode: the brush paints over other cells and the eraser erases any; off (safe) by default. */
    this.overwrite = false;
    /** Threshold tool: the channel (null: the one shown in grayscale, else the layer's) and the level
     * (0..255 display units; null: automatic, Otsu's over the box) it runs with (side panel). */
    this.thresholdOptions = { channel: null, level: null };
    this.selected = null;
    this.hover = null;
    this.pending = null; // "merge" | "swap": the next click picks the other cell
    this.busy = false;
    this.gesture = null; // state of the pointer gesture in progress (gestures.js)
    this.seeds = [];
    /** Page hooks (the review page's overlays): `pixelLayers` paint `(out, rect, editor)` into the image
     * pixels after the labels, `rect` only (so they render by dirty rects and tiles: after a change, call
     * `view.invalidate(rect)`); `screenLayers` draw `(ctx, view)` on the overlay canvas under the cursor
     * (then `view.invalidateOverlay()`); `pointerFilter(type, event, point)` sees pointer events before
     * the tools and returns true when the page used one. */
    this.pixelLayers = [];
    this.screenLayers = [];
    this.pointerFilter = null;
    /** Pixels per cell of each layer (`cellAreas.of(feature).area(id)`, `.count`), kept by the edits. */
    this.cellAreas = trackCellAreas(this);
    this.view = new CanvasView(stage, {
      width, height,
      paint: (out, rect) => {
        this.display.paintRect(out, rect, this);
        for (const layer of this.pixelLayers) layer(out, rect, this);
      },
      drawOverlay: (ctx, view) => {
        for (const layer of this.screenLayers) layer(ctx, view);
        drawOverlay(this, ctx, view);
      },
      onPointer: (type, event, point) => {
        if (this.pointerFilter && this.pointerFilter(type, event, point)) return;
        handlePointer(this, type, event, point);
      },
      onViewChange: () => this.emit("state", { view: true }),
    });
    this.view.updateCursor(TOOL_CURSORS[this.tool]);
  }

  /** Index of the label layer shown and edited. */
  get feature() { return this.display.labels.feature; }

  /** The label layer shown and edited. */
  get layer() { return this.layers[this.feature]; }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /**
   * Tell the page something (it shows a toast).
   *
   * @param {string} text
   * @param {"info"|"error"} [level="info"]
   */
  notify(text, level = "info") {
    this.emit("message", { text, level });
  }

  /** Whether edits may run now; tells the user why not otherwise. */
  canEdit() {
    if (this.readOnly) {
      this.notify("This task is read-only: you can look, but not change the labels.", "error");
      return false;
    }
    if (this.busy) {
      this.notify("Wait for the server tool to finish.");
      return false;
    }
    return true;
  }

  /**
   * Pick a pointer tool.
   *
   * @param {string} name One of {@link POINTER_TOOLS}.
   */
  setTool(name) {
    if (!POINTER_TOOLS.includes(name)) throw new RangeError(`unknown tool ${name}`);
    if (EDITING_TOOLS.has(name) && this.readOnly) {
      this.canEdit();
      return;
    }
    this.finishGesture();
    this.tool = name;
    this.pending = null;
    this.seeds = [];
    this.view.updateCursor(TOOL_CURSORS[name]);
    this.view.invalidateOverlay();
    this.emit("state", { tool: name });
  }

  /**
   * End the pointer gesture in progress: a brush stroke is kept (one undo
   * entry), a half-drawn threshold box is dropped.
   */
  finishGesture() {
    const gesture = this.gesture;
    this.gesture = null;
    if (gesture && gesture.stroke) this.commit(gesture.stroke.finish());
    if (gesture) this.view.invalidateOverlay();
  }

  /**
   * Select a cell (highlighted outline; the brush paints it), or none.
   *
   * @param {number|null} id Label id, null or 0 for none.
   */
  select(id) {
    const next = id ? id : null;
    if (next === this.selected) return;
    for (const old of [this.selected, next]) {
      const present = old && old <= this.maxIds[this.feature]; // a fresh id has no pixels here yet
      const box = present ? cellBox(this.layer, old, 1) : null;
      if (box) this.view.invalidate(box);
    }
    this.selected = next;
    this.emit("state", { selected: next });
  }

  /**
   * Record an edit that a tool has already applied to a layer, and redraw it.
   *
   * @param {{bbox: number[], before: Int32Array, after: Int32Array, feature: number}|null} entry
   * @returns {boolean} Whether anything changed.
   */
  commit(entry) {
    if (!entry) return false;
    this.noteIds(entry, "after");
    this.history.push(entry);
    this.redrawEntry(entry);
    this.emit("edit", { kind: "edit", entry });
    return true;
  }

  /** Raise the layer's id bound by the ids an entry writes. */
  noteIds(entry, side) {
    const ids = entry[side];
    let m = this.maxIds[entry.feature] || 0;
    for (let i = 0; i < ids.length; i++) if (ids[i] > m) m = ids[i];
    this.maxIds[entry.feature] = m;
  }

  /**
   * A label id used in no layer (one more than the largest ever seen in any),
   * so a new cell and its nucleus can share it.
   *
   * @returns {number}
   * @throws {RangeError} When the int32 id space is used up.
   */
  nextLabelId() {
    const m = Math.max(0, ...this.maxIds);
    if (m >= MAX_LABEL_ID) throw new RangeError("no free label id is left in this layer");
    return m + 1;
  }

  redrawEntry(entry) {
    if (entry.feature !== this.feature) return;
    this.view.invalidate(growBbox(entry.bbox, 1, this.height, this.width));
    this.refreshHover();
  }

  /** Re-read the id under the pointer (after an edit or a layer switch). */
  refreshHover() {
    if (!this.hover) return;
    const id = getLabel(this.layer, this.hover.y, this.hover.x);
    if (id === this.hover.id) return;
    this.hover = { ...this.hover, id };
    this.view.invalidateOverlay();
    this.emit("hover", this.hover);
  }

  /** Undo the newest edit. */
  undo() {
    if (this.readOnly || this.busy || this.gesture) return;
    const entry = this.history.undo(this.layers);
    if (!entry) { this.notify("Nothing to undo."); return; }
    this.noteIds(entry, "before");
    this.redrawEntry(entry);
    this.emit("edit", { kind: "undo", entry });
  }

  /** Redo the newest undone edit. */
  redo() {
    if (this.readOnly || this.busy || this.gesture) return;
    const entry = this.history.redo(this.layers);
    if (!entry) { this.notify("Nothing to redo."); return; }
    this.noteIds(entry, "after");
    this.redrawEntry(entry);
    this.emit("edit", { kind: "redo", entry });
  }

  /**
   * Replace every layer and the history (e.g. with the server's version).
   *
   * @param {object[]} layers New layers, same size as the image.
   * @param {History} [history] Default: empty.
   */
  replaceLayers(layers, history = new History()) {
    this.layers = layers;
    this.history = history;
    this.maxIds = layers.map(maxLabelId);
    this.selected = null;
    this.view.invalidate();
    this.emit("edit", { kind: "replace", entry: null });
    this.emit("state", { selected: null });
  }

  /**
   * Allow or refuse edits (e.g. after submit, or when saving stopped).
   *
   * @param {boolean} readOnly
   */
  setReadOnly(readOnly) {
    this.readOnly = Boolean(readOnly);
    if (this.readOnly && this.tool !== "select") this.setTool("select");
    this.view.invalidateOverlay();
    this.emit("state", { readOnly: this.readOnly });
  }

  /** The stroke tool the size controls set: the eraser while it is the tool, else the brush. */
  get sizeTool() { return this.tool === "eraser" ? "eraser" : "brush"; }

  /** Radius (px) of the brush, or of the eraser while it is the tool. */
  get brushRadius() { return this.radii[this.sizeTool]; }

  /**
   * Set the radius of the brush, or of the eraser while it is the tool.
   *
   * @param {number} radius Pixels, 0..{@link MAX_BRUSH_RADIUS_UI} (0 paints one pixel).
   */
  setBrushRadius(radius) {
    this.radii[this.sizeTool] = Math.max(0, Math.min(MAX_BRUSH_RADIUS_UI, Math.round(radius)));
    this.view.invalidateOverlay();
    this.emit("state", { brushRadius: this.brushRadius });
  }

  /**
   * Overwrite mode on or off: on, the brush paints over other cells and the
   * eraser erases every cell; off (safe), the brush paints background only and
   * the eraser erases only the selected cell.
   *
   * @param {boolean} on
   */
  setOverwrite(on) {
    this.overwrite = Boolean(on);
    this.view.invalidateOverlay();
    this.emit("state", { overwrite: this.overwrite });
  }

  /**
   * Set what the threshold tool runs with.
   *
   * @param {{channel?: number|null, level?: number|null}} patch See {@link Editor#thresholdOptions}.
   */
  setThresholdOptions(patch) {
    this.thresholdOptions = { ...this.thresholdOptions, ...patch };
    this.emit("state", { threshold: true });
  }

  /** Change display settings and repaint everything; see DisplayState. */
  setChannel(c, patch) { this.display.setChannel(c, patch); this.repaint(); }
  setGrayscale(c) { this.display.setGrayscale(c); this.repaint(); }
  setLabelDisplay(patch) {
    const featureChanged = patch.feature !== undefined && patch.feature !== this.feature;
    if (featureChanged) this.finishGesture();
    this.display.setLabels(patch);
    if (featureChanged) {
      this.selected = null;
      this.seeds = [];
      this.pending = null;
      this.refreshHover();
    }
    this.repaint();
  }

  repaint() {
    this.view.invalidate();
    this.view.invalidateOverlay();
    this.emit("state", { display: true });
  }

  /** The id the brush, fill and threshold write: the selected cell, or a new one (then selected). */
  paintLabel() {
    if (this.selected === null) this.select(this.nextLabelId());
    return this.selected;
  }

  /**
   * Run a command by name (toolbar buttons and keyboard shortcuts share these).
   *
   * @param {string} action e.g. "tool:brush", "label:grow", "edit:undo", "view:fit".
   * @param {number|null} [arg] Channel index for "view:channel".
   */
  command(action, arg = null) {
    const [group, name] = action.split(":");
    if (group === "tool") {
      if (name === "autofit") this.autofitSelected();
      else this.setTool(name);
      return;
    }
    const handler = COMMANDS[action];
    if (!handler) throw new RangeError(`unknown editor command ${action}`);
    handler(this, arg);
  }

  /** Edit commands on the selected cell. */
  labelCommand(run, needsSelection = true) {
    if (!this.canEdit()) return;
    if (needsSelection && this.selected === null) {
      this.notify("Select a cell first (V, then click it).");
      return;
    }
    const entry = run(this.layer, { feature: this.feature });
    if (!this.commit(entry)) this.notify("Nothing changed.");
  }

  /** Refit the selected cell's outline on the server. */
  autofitSelected() {
    if (!this.canEdit()) return;
    if (this.selected === null) { this.notify("Select a cell to autofit first (V, then click it)."); return; }
    const bbox = cellBox(this.layer, this.selected, AUTOFIT_MARGIN_PX);
    if (!bbox) { this.notify("The selected cell has no pixels in this layer."); return; }
    this.runServerTool("autofit", { bbox, label: this.selected });
  }

  /**
   * Run a server tool on a box of the shown layer and apply its answer as
   * one undo entry; editing is locked meanwhile (see server_tools.js).
   *
   * @param {"threshold"|"watershed_split"|"autofit"|"add_cell"} name
   * @param {{bbox: number[], label?: number, seeds?: number[][], nextId?: number, point?: number[]}} request
   * @returns {Promise<boolean>} Whether the labels changed.
   */
  runServerTool(name, request) {
    return runServerTool(this, name, request);
  }

  /**
   * Dispatch keyboard shortcuts from `target` (usually `window`) to commands.
   *
   * @param {EventTarget} target
   * @returns {() => void} Removes the listener.
   */
  bindKeys(target = window) {
    const onKey = (event) => {
      if (event.target instanceof Element && event.target.closest("dialog")) return; // a modal question has the keys
      const hit = resolveKey(event);
      if (!hit) return;
      event.preventDefault();
      if (hit.action === "help") this.emit("help");
      else this.command(hit.action, hit.arg);
    };
    target.addEventListener("keydown", onKey);
    return () => target.removeEventListener("keydown", onKey);
  }

  /** Stop listening to input. */
  destroy() { this.view.destroy(); }
}
