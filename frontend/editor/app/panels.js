/**
 * Side panel controls of the editor: the label overlay (whole-cell / nuclear,
 * filled / outline, opacity, on/off) and the channels (colour composite or
 * one channel in grayscale; per channel on/off, colour, display range,
 * brightness, contrast, gamma, invert).
 *
 * @module editor/app/panels
 */

import { autoRange } from "../auto_range.js";
import { OUTLINE_CHOICES, rgbToHex } from "./display.js";
import { defaultToolChannel } from "./server_tools.js";

let uid = 0;
const COUNT = new Intl.NumberFormat("en");

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function segmented(name, options, onPick) {
  const group = el("div", { class: "ll-segmented", role: "radiogroup", "aria-label": name });
  const buttons = options.map(([value, label]) => {
    const b = el("button", { type: "button", class: "ll-seg", dataset: { value: String(value) } }, label);
    b.addEventListener("click", () => { onPick(value); b.blur(); });
    group.appendChild(b);
    return b;
  });
  const set = (value) => {
    for (const b of buttons) b.setAttribute("aria-checked", String(b.dataset.value === String(value)));
  };
  for (const b of buttons) b.setAttribute("role", "radio");
  return { group, set };
}

function slider(label, { min, max, step, value, format = (v) => String(v) }, onInput) {
  const id = `ll-range-${++uid}`;
  const input = el("input", { type: "range", id, min: String(min), max: String(max), step: String(step), value: String(value) });
  const out = el("output", { htmlFor: id }, format(value));
  input.addEventListener("input", () => {
    out.textContent = format(Number(input.value));
    onInput(Number(input.value));
  });
  const row = el("div", { class: "ll-slider" }, el("label", { htmlFor: id }, label), input, out);
  const set = (v) => { input.value = String(v); out.textContent = format(v); };
  return { row, set, input };
}

/** Controls that keep the focus after a click: after a pointer interaction they hand it back. */
const POINTER_RELEASED = "input[type=checkbox], input[type=radio], input[type=range]";

/**
 * Hand the keyboard back to the editor after the pointer used a checkbox,
 * radio button or slider inside `root`: the control is blurred once the click
 * or drag is over, so the shortcuts work and the arrow keys do not move a
 * slider the user is no longer touching. A control reached with Tab keeps
 * the focus (the arrows are for it then).
 *
 * @param {HTMLElement} root
 */
export function releaseFocusAfterPointer(root) {
  let pressed = null;
  root.addEventListener("pointerdown", (e) => {
    const hit = e.target instanceof Element ? e.target.closest(`${POINTER_RELEASED}, label`) : null;
    const control = hit && hit.tagName === "LABEL" ? hit.control : hit; // a click on a label focuses its control
    pressed = control && control.matches(POINTER_RELEASED) ? control : null;
  }, true);
  let releasing = null; // released by the pointer, its blur not yet run
  window.addEventListener("pointerup", () => {
    const control = pressed;
    pressed = null;
    releasing = control;
    // after the click / change handlers of this press have run
    if (control) {
      setTimeout(() => {
        if (releasing === control) releasing = null;
        if (document.activeElement === control) control.blur();
      }, 0);
    }
  }, true);
  // a key pressed before that blur ran is the editor's too, not the control's
  window.addEventListener("keydown", (e) => {
    if (!releasing || e.target !== releasing) return;
    releasing.blur();
    releasing = null;
    e.preventDefault();
  }, true);
}

/**
 * Build the label display and channel controls into `container`.
 *
 * @param {HTMLElement} container
 * @param {import("./editor.js").Editor} editor
 * @param {{featureNames?: string[]}} [options] Display names of the label layers, by layer index
 *   (the panel offers the layers of `editor.features`).
 * @returns {{sync: () => void}}
 */
export function buildSidePanel(container, editor, { featureNames = ["Whole cell", "Nuclear"] } = {}) {
  container.replaceChildren();
  const threshold = buildThresholdSection(editor);
  const labels = buildLabelSection(editor, featureNames);
  const channels = buildChannelSection(editor);
  container.append(threshold.section, labels.section, channels.section);
  releaseFocusAfterPointer(container);
  const sync = () => { threshold.sync(); labels.sync(); channels.sync(); };
  editor.addEventListener("state", (e) => {
    if (e.detail.display) sync();
    else if (e.detail.tool || e.detail.threshold) threshold.sync();
  });
  sync();
  return { sync };
}

/**
 * The threshold tool's options, shown while it is the tool: the channel it looks at and its level
 * (automatic: Otsu's over the box, as the server last reported it; or a level the user sets).
 */
function buildThresholdSection(editor) {
  const n = editor.display.channels.length;
  const channelName = (c) => `${c + 1}. ${editor.display.channels[c].name}`;
  const autoOption = el("option", { value: "" });
  const channel = el("select", { class: "ll-select", title: "The channel the threshold looks at",
    "aria-label": "Threshold channel", dataset: { role: "threshold-channel" } },
  autoOption, ...editor.display.channels.map((ch, c) => el("option", { value: String(c) }, channelName(c))));
  channel.addEventListener("change", () => {
    editor.setThresholdOptions({ channel: channel.value === "" ? null : Number(channel.value) });
    channel.blur(); // the keys go back to the editor
  });
  let lastAuto = null; // the level the server chose the last time the level was automatic
  editor.addEventListener("tool", (e) => {
    const levels = e.detail.name === "threshold" && e.detail.answer && e.detail.answer.levels;
    if (levels && editor.thresholdOptions.level === null) { lastAuto = Math.round(levels[1]); sync(); }
  });
  const auto = el("input", { type: "checkbox", dataset: { role: "threshold-auto" } });
  const level = slider("Level", { min: 0, max: 255, step: 1, value: 128 },
    (v) => editor.setThresholdOptions({ level: v }));
  level.input.dataset.role = "threshold-level";
  level.input.title = "Pixels brighter than this (0-255, the channel's display values) join the cell";
  auto.addEventListener("change", () => {
    editor.setThresholdOptions({ level: auto.checked ? null : Number(level.input.value) });
  });
  const section = el("section", { class: "ll-panel ll-panel-threshold", dataset: { role: "threshold-options" } },
    el("h2", {}, "Threshold"),
    el("div", { class: "ll-slider" }, el("label", {}, "Channel"), channel),
    level.row,
    el("label", { class: "ll-check" }, auto, "Automatic level (Otsu's, per box)"),
    el("p", { class: "ll-hint" }, "Drag a box over a cell: its pixels above the level join the selected cell "
      + "(a new one if none is selected). Lower the level to take in dimmer pixels."));
  const sync = () => {
    section.hidden = editor.tool !== "threshold";
    const shown = editor.display.grayscaleChannel ?? defaultToolChannel(editor.feature, n);
    autoOption.textContent = `Auto: ${channelName(shown)}`;
    const { channel: picked, level: set } = editor.thresholdOptions;
    channel.value = picked === null ? "" : String(picked);
    auto.checked = set === null;
    level.input.disabled = set === null;
    if (set !== null) level.set(set);
    else if (lastAuto !== null) level.set(lastAuto);
    if (set === null) level.row.querySelector("output").textContent = lastAuto === null ? "auto" : `${lastAuto}`;
  };
  return { section, sync };
}

function buildLabelSection(editor, featureNames) {
  const feature = segmented("Label layer", editor.features.map((f) => [f, featureNames[f]]), (f) => editor.setLabelDisplay({ feature: f }));
  const mode = segmented("Label display", [["fill", "Filled"], ["outline", "Outline"]], (m) => editor.setLabelDisplay({ mode: m }));
  const opacity = slider("Fill", { min: 0, max: 1, step: 0.05, value: editor.display.labels.opacity, format: (v) => `${Math.round(v * 100)}%` },
    (v) => editor.setLabelDisplay({ opacity: v }));
  opacity.input.title = "Fill opacity of the cells";
  const outline = el("select", { class: "ll-select", title: "Colour of the cell outlines", "aria-label": "Outline colour" },
    ...OUTLINE_CHOICES.map(([hex, name]) => el("option", { value: hex ?? "cells" }, name)));
  outline.addEventListener("change", () => {
    editor.setLabelDisplay({ outline: outline.value === "cells" ? null : outline.value });
    outline.blur(); // the keys go back to the editor
  });
  const show = el("input", { type: "checkbox", checked: editor.display.labels.visible });
  show.addEventListener("change", () => { editor.setLabelDisplay({ visible: show.checked }); show.blur(); });
  const only = el("input", { type: "checkbox", checked: editor.display.labels.selectedOnly });
  only.addEventListener("change", () => { editor.setLabelDisplay({ selectedOnly: only.checked }); only.blur(); });
  const count = el("span", { class: "ll-cell-count", dataset: { role: "cell-count" } });
  const section = el("section", { class: "ll-panel ll-panel-labels" },
    el("h2", {}, "Labels ", count),
    feature.group,
    mode.group,
    opacity.row,
    el("div", { class: "ll-slider" }, el("label", {}, "Outlines"), outline),
    el("label", { class: "ll-check" }, show, "Show labels (L)"),
    el("label", { class: "ll-check" }, only, "Selected cell only"));
  const sync = () => {
    const s = editor.display.labels;
    feature.set(s.feature);
    mode.set(s.mode);
    opacity.set(s.opacity);
    outline.value = s.outline ?? "cells";
    show.checked = s.visible;
    only.checked = s.selectedOnly;
    syncCount();
  };
  let shown = -1;
  const syncCount = () => {
    const n = editor.cellAreas.of(editor.feature).count;
    if (n === shown) return;
    shown = n;
    count.textContent = `· ${COUNT.format(n)} cell${n === 1 ? "" : "s"}`;
  };
  editor.addEventListener("edit", syncCount);
  return { section, sync };
}

function buildChannelSection(editor) {
  const modeSwitch = segmented("Channel mode", [["colour", "Colour"], ["gray", "Grayscale"]], (m) => {
    if (m === "colour") editor.setGrayscale(null);
    else if (editor.display.grayscaleChannel === null) editor.command("view:grayscale");
  });
  const list = el("div", { class: "ll-channels" });
  const rows = editor.display.channels.map((ch, c) => channelRow(editor, c));
  list.append(...rows.map((r) => r.row));
  const section = el("section", { class: "ll-panel ll-panel-channels" },
    el("h2", {}, "Channels"), modeSwitch.group, list);
  const sync = () => {
    modeSwitch.set(editor.display.grayscaleChannel === null ? "colour" : "gray");
    for (const r of rows) r.sync();
  };
  return { section, sync };
}

function channelRow(editor, c) {
  const get = () => editor.display.channels[c];
  const visible = el("input", { type: "checkbox", title: `Show channel ${c + 1} (${c + 1})` });
  visible.addEventListener("change", () => {
    if (editor.display.grayscaleChannel !== null) editor.setGrayscale(c);
    else editor.setChannel(c, { visible: visible.checked });
  });
  const colour = el("input", { type: "color", class: "ll-colour", title: "Colour" });
  colour.addEventListener("input", () => editor.setChannel(c, { colour: colour.value }));
  colour.addEventListener("change", () => colour.blur()); // the picker closed: the keys go back to the editor
  const name = el("span", { class: "ll-channel-name" }, `${c + 1}. ${get().name}`);
  const lo = slider("Low", { min: 0, max: 254, step: 1, value: get().range[0] }, (v) => {
    const hi = Math.max(v + 1, get().range[1]);
    editor.setChannel(c, { range: [v, hi] });
  });
  const hi = slider("High", { min: 1, max: 255, step: 1, value: get().range[1] }, (v) => {
    const low = Math.min(v - 1, get().range[0]);
    editor.setChannel(c, { range: [low, v] });
  });
  const brightness = slider("Brightness", { min: -1, max: 1, step: 0.02, value: 0, format: (v) => v.toFixed(2) },
    (v) => editor.setChannel(c, { brightness: v }));
  const contrast = slider("Contrast", { min: 0.2, max: 4, step: 0.05, value: 1, format: (v) => v.toFixed(2) },
    (v) => editor.setChannel(c, { contrast: v }));
  const gamma = slider("Gamma", { min: 0.2, max: 3, step: 0.05, value: 1, format: (v) => v.toFixed(2) },
    (v) => editor.setChannel(c, { gamma: v }));
  const invert = el("input", { type: "checkbox" });
  invert.addEventListener("change", () => editor.setChannel(c, { invert: invert.checked }));
  const reset = el("button", { type: "button", class: "ll-link" }, "Reset");
  reset.addEventListener("click", () => editor.setChannel(c, { range: [0, 255], brightness: 0, contrast: 1, gamma: 1, invert: false }));
  const auto = el("button", { type: "button", class: "ll-link", title: "Stretch the display range to what this image holds" }, "Auto");
  auto.addEventListener("click", () => {
    const n = editor.width * editor.height;
    editor.setChannel(c, { range: autoRange(editor.channels.subarray(c * n, (c + 1) * n)) });
    auto.blur();
  });
  const details = el("details", { class: "ll-channel-details" },
    el("summary", { title: "Display range, brightness, contrast, gamma" }, "Adjust"),
    lo.row, hi.row, brightness.row, contrast.row, gamma.row,
    el("div", { class: "ll-channel-foot" }, el("label", { class: "ll-check" }, invert, "Invert"), auto, reset));
  const row = el("div", { class: "ll-channel", dataset: { channel: String(c) } },
    el("div", { class: "ll-channel-head" }, visible, colour, name), details);
  const sync = () => {
    const s = get();
    const gray = editor.display.grayscaleChannel;
    visible.checked = gray === null ? s.visible : gray === c;
    visible.type = gray === null ? "checkbox" : "radio";
    colour.value = rgbToHex(s.colour);
    colour.disabled = gray !== null;
    lo.set(s.range[0]); hi.set(s.range[1]);
    brightness.set(s.brightness); contrast.set(s.contrast); gamma.set(s.gamma);
    invert.checked = s.invert;
    row.classList.toggle("ll-channel-off", !visible.checked);
  };
  return { row, sync };
}
