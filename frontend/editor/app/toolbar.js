/**
 * The editor's chrome that any page reuses: the tool bar (tools, label
 * commands, undo/redo, brush size), the status bar (tool, cell under the
 * pointer, selection, zoom) and the `?` shortcut overlay.
 *
 * @module editor/app/toolbar
 */

import { KEYMAP, formatBinding, helpRows } from "../keys.js";
import { RADIUS_STEPS, diameterPx, modeText, nearestStep } from "../paint_mode.js";
import { releaseFocusAfterPointer } from "./panels.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** 24x24 stroke icons (paths), drawn for this editor. */
const ICONS = {
  select: "M6 3l12 9-5.5 1.2L15 19l-2.6 1.2-2.5-5.8L6 18z",
  brush: "M14.5 4.5l5 5-8.5 8.5-5-5zM6 13l5 5c-1 2-3 3-6 3 0-3 .5-6 1-8z",
  eraser: "M8 20h12M4.5 14.5l9-9 6 6-9 9H9z M9 10l6 6",
  fill: "M5 11l7-7 7 7-7 7zM5 11h14M20 15c1 1.7 1.5 2.6 1.5 3.3a1.5 1.5 0 0 1-3 0c0-.7.5-1.6 1.5-3.3z",
  trim: "M6 7a2 2 0 1 0 0 .1M6 17a2 2 0 1 0 0 .1M7.7 8.2L20 17M7.7 15.8L20 7",
  threshold: "M4 4h4M11 4h2M16 4h4v4M20 11v2M20 16v4h-4M13 20h-2M8 20H4v-4M4 13v-2M4 8V4M12 8a4 4 0 1 0 .1 0",
  watershed: "M12 3v18M8 6.5a6.5 6.5 0 1 0 8 0",
  cut: "M12 4a8 8 0 1 0 .1 0M5 20L19 4",
  autofit: "M4 9V4h5M20 9V4h-5M4 15v5h5M20 15v5h-5M12 7.5a4.5 4.5 0 1 0 .1 0",
  addCell: "M10 5a6 6 0 1 0 .1 0M10 8v6M7 11h6M17 15l4 4",
  grow: "M12 6a6 6 0 1 0 .1 0M12 9v6M9 12h6",
  shrink: "M12 6a6 6 0 1 0 .1 0M9 12h6",
  merge: "M9 7a5 5 0 1 0 .1 0M15 7a5 5 0 1 0 .1 0",
  swap: "M5 8h13l-3.5-3.5M19 16H6l3.5 3.5",
  delete: "M5 7h14M9 7V4.5h6V7M7 7l1 13h8l1-13M10.5 10.5v6M13.5 10.5v6",
  newLabel: "M12 5v14M5 12h14",
  undo: "M9 14L4 9l5-5M4 9h10a6 6 0 0 1 0 12h-3",
  redo: "M15 14l5-5-5-5M20 9H10a6 6 0 0 0 0 12h3",
  overwrite: "M4 8l8-4 8 4-8 4zM4 12.5l8 4 8-4M4 17l8 4 8-4",
  help: "M9.5 9a2.5 2.5 0 1 1 3.5 2.3c-.7.3-1 .9-1 1.7M12 17v.2M12 3a9 9 0 1 0 .1 0",
};

/** Tool bar layout: [action, icon, label]; null separates groups. */
const BAR = [
  ["tool:select", "select", "Select"], ["tool:brush", "brush", "Brush"], ["tool:eraser", "eraser", "Eraser"],
  ["tool:fill", "fill", "Fill"], ["tool:trim", "trim", "Trim"], null,
  ["tool:threshold", "threshold", "Threshold"], ["tool:watershed", "watershed", "Split"],
  ["tool:cut", "cut", "Cut"], ["tool:autofit", "autofit", "Autofit"],
  ["tool:addCell", "addCell", "Add cell"], null,
  ["label:new", "newLabel", "New cell"], ["label:grow", "grow", "Grow"], ["label:shrink", "shrink", "Shrink"],
  ["label:replace", "merge", "Merge"], ["label:swap", "swap", "Swap"], ["label:delete", "delete", "Delete"], null,
  ["edit:undo", "undo", "Undo"], ["edit:redo", "redo", "Redo"],
];

/**
 * An `<svg>` icon.
 *
 * @param {string} name Key of the icon table.
 * @returns {SVGSVGElement}
 */
export function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("ll-icon");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name] || ICONS.help);
  svg.appendChild(path);
  return svg;
}

function shortcutOf(action) {
  const binding = KEYMAP.find((b) => b.action === action);
  return binding ? formatBinding(binding, { mac: /Mac/.test(navigator.platform) }) : "";
}

/**
 * Fill a tool bar element with buttons wired to the editor.
 *
 * @param {HTMLElement} bar
 * @param {import("./editor.js").Editor} editor
 * @returns {{sync: () => void}} Call `sync` to reflect the editor's state (it listens itself).
 */
export function buildToolbar(bar, editor) {
  bar.replaceChildren();
  const buttons = new Map();
  let group = document.createElement("div");
  group.className = "ll-toolgroup";
  bar.appendChild(group);
  for (const item of BAR) {
    if (item === null) {
      group = document.createElement("div");
      group.className = "ll-toolgroup";
      bar.appendChild(group);
      continue;
    }
    const [action, iconName, label] = item;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ll-tool";
    button.dataset.action = action;
    const key = shortcutOf(action);
    button.title = `${label}${key ? ` (${key})` : ""}`;
    button.setAttribute("aria-label", button.title);
    button.append(icon(iconName));
    const caption = document.createElement("span");
    caption.textContent = label;
    button.append(caption);
    button.addEventListener("click", () => {
      editor.command(action);
      button.blur(); // keep keyboard shortcuts (Space) on the canvas, not the button
    });
    group.appendChild(button);
    buttons.set(action, button);
  }
  const size = document.createElement("label");
  size.className = "ll-brushsize";
  size.title = `Width of the brush, or of the eraser while it is the tool, in image pixels ([ and ])`;
  const slider = document.createElement("input");
  slider.type = "range";
  slider.min = "0";
  slider.max = String(RADIUS_STEPS.length - 1); // the slider moves through the steps [ and ] take
  slider.setAttribute("aria-label", "Brush or eraser size");
  const sizeName = document.createElement("span");
  const readout = document.createElement("output");
  readout.dataset.role = "brush-size";
  size.append(sizeName, slider, readout);
  slider.addEventListener("input", () => editor.setBrushRadius(RADIUS_STEPS[Number(slider.value)]));
  const overwrite = document.createElement("button");
  overwrite.type = "button";
  overwrite.className = "ll-tool ll-overwrite";
  overwrite.dataset.action = "brush:overwrite";
  overwrite.append(icon("overwrite"), Object.assign(document.createElement("span"), { textContent: "Overwrite" }));
  overwrite.addEventListener("click", () => { editor.command("brush:overwrite"); overwrite.blur(); });
  bar.append(size, overwrite);
  releaseFocusAfterPointer(bar);

  const sync = () => {
    for (const [action, button] of buttons) {
      const [kind, name] = action.split(":");
      if (kind === "tool" && name !== "autofit") button.setAttribute("aria-pressed", String(editor.tool === name));
      const editing = action !== "tool:select";
      button.disabled = (editor.readOnly && editing) || (editor.busy && editing);
    }
    buttons.get("edit:undo").disabled = editor.readOnly || !editor.history.canUndo;
    buttons.get("edit:redo").disabled = editor.readOnly || !editor.history.canRedo;
    slider.value = String(nearestStep(editor.brushRadius));
    slider.disabled = editor.readOnly;
    sizeName.textContent = editor.sizeTool === "eraser" ? "Eraser" : "Brush";
    readout.textContent = `⌀ ${diameterPx(editor.brushRadius)} px`;
    overwrite.setAttribute("aria-pressed", String(editor.overwrite));
    overwrite.disabled = editor.readOnly;
    const mode = modeText(editor.sizeTool, editor.overwrite, editor.selected);
    overwrite.title = `Overwrite other cells (${shortcutOf("brush:overwrite")}); now ${mode}`;
    overwrite.setAttribute("aria-label", overwrite.title);
  };
  editor.addEventListener("state", sync);
  editor.addEventListener("edit", sync);
  sync();
  return { sync };
}

const TOOL_NAMES = {
  select: "Select", brush: "Brush", eraser: "Eraser", fill: "Fill", trim: "Trim",
  threshold: "Threshold (drag a box)", watershed: "Split (click two seeds)", cut: "Cut (drag a line across a cell)",
  addCell: "Add cell (click a missed cell)",
};

/**
 * Fill a status bar element: tool, pointer position and cell id, selection, zoom.
 *
 * @param {HTMLElement} bar
 * @param {import("./editor.js").Editor} editor
 * @param {string[]} [featureNames] Display names of the label layers.
 */
export function buildStatusBar(bar, editor, featureNames = ["Whole cell", "Nuclear"]) {
  bar.replaceChildren();
  const field = (name) => {
    const span = document.createElement("span");
    span.className = `ll-status-${name}`;
    bar.appendChild(span);
    return span;
  };
  const tool = field("tool"), layer = field("layer"), selected = field("selected"), hover = field("hover"), zoom = field("zoom");
  const sync = () => {
    const busy = editor.busy ? " · working…" : "";
    const stroke = editor.tool === "brush" || editor.tool === "eraser";
    const mode = stroke ? modeText(editor.tool, editor.overwrite, editor.selected) : "";
    const paint = stroke ? ` ⌀ ${diameterPx(editor.brushRadius)} px · ${mode}` : "";
    const pending = editor.pending ? ` · ${editor.pending}: click the other cell` : "";
    tool.textContent = `${TOOL_NAMES[editor.tool] || editor.tool}${paint}${pending}${busy}`;
    layer.textContent = `Labels: ${featureNames[editor.feature] || editor.feature}`;
    selected.textContent = editor.selected === null ? "No cell selected" : `Selected: #${editor.selected}`;
    zoom.textContent = `${Math.round(editor.view.scale * 100)}%`;
  };
  const showHover = () => {
    const h = editor.hover;
    hover.textContent = h ? `(${h.y}, ${h.x}) ${h.id > 0 ? `cell #${h.id}` : "background"}` : "";
  };
  editor.addEventListener("state", sync);
  editor.addEventListener("hover", showHover);
  editor.addEventListener("edit", showHover);
  sync();
  showHover();
}

/**
 * Fill the `?` overlay with the shortcut table (toggle it with the returned function).
 *
 * @param {HTMLElement} overlay Hidden element that becomes the overlay.
 * @returns {(show?: boolean) => void} Toggles (or sets) its visibility.
 */
export function buildHelpOverlay(overlay) {
  overlay.replaceChildren();
  overlay.setAttribute("role", "dialog");
  overlay.setAttribute("aria-label", "Keyboard shortcuts");
  const card = document.createElement("div");
  card.className = "ll-help-card";
  const title = document.createElement("h2");
  title.textContent = "Keyboard shortcuts";
  card.appendChild(title);
  const groups = new Map();
  const rows = [...helpRows(KEYMAP, { mac: /Mac/.test(navigator.platform) }),
    { group: "View", keys: "Wheel", description: "Zoom at the pointer" },
    { group: "View", keys: "Space + drag", description: "Pan (or drag with the middle button)" }];
  for (const row of rows) {
    if (!groups.has(row.group)) groups.set(row.group, []);
    groups.get(row.group).push(row);
  }
  const columns = document.createElement("div");
  columns.className = "ll-help-columns";
  for (const [name, list] of groups) {
    const section = document.createElement("section");
    const h = document.createElement("h3");
    h.textContent = name;
    const table = document.createElement("table");
    for (const row of list) {
      const tr = table.insertRow();
      const k = tr.insertCell();
      for (const [i, part] of row.keys.split(" / ").entries()) {
        if (i) k.append(" ");
        const kbd = document.createElement("kbd");
        kbd.textContent = part;
        k.appendChild(kbd);
      }
      tr.insertCell().textContent = row.description;
    }
    section.append(h, table);
    columns.appendChild(section);
  }
  const close = document.createElement("p");
  close.className = "ll-help-close";
  close.textContent = "Press ? or Esc to close.";
  card.append(columns, close);
  overlay.appendChild(card);
  const toggle = (show = overlay.hidden) => { overlay.hidden = !show; };
  overlay.addEventListener("click", (e) => { if (e.target === overlay) toggle(false); });
  window.addEventListener("keydown", (e) => { if (e.key === "Escape" && !overlay.hidden) toggle(false); });
  return toggle;
}
