/**
 * Editor commands by name: what a tool bar button or a keyboard shortcut
 * (keys.js KEYMAP actions) does, other than picking a pointer tool.
 *
 * @module editor/app/commands
 */

import { stepRadius } from "../paint_mode.js";
import * as tools from "../tools/index.js";

/**
 * Command handlers `(editor, arg) => void`, keyed by KEYMAP action.
 *
 * @type {Readonly<Record<string, (ed: import("./editor.js").Editor, arg: number|null) => void>>}
 */
export const COMMANDS = Object.freeze({
  "label:grow": (ed) => ed.labelCommand((layer, o) => tools.growLabel(layer, ed.selected, o)),
  "label:shrink": (ed) => ed.labelCommand((layer, o) => tools.shrinkLabel(layer, ed.selected, o)),
  "label:delete": (ed) => {
    const id = ed.selected;
    ed.labelCommand((layer, o) => tools.deleteLabel(layer, id, o));
    if (id !== null && !ed.readOnly) ed.select(null);
  },
  "label:replace": (ed) => armPending(ed, "merge", "Click the cell to merge into the selected one."),
  "label:swap": (ed) => armPending(ed, "swap", "Click the cell whose id to swap with the selected one."),
  "label:new": (ed) => {
    if (!ed.canEdit()) return;
    ed.select(ed.nextLabelId());
    ed.setTool("brush"); // whatever the tool was: with fill, a click on background gave it all the new id
    ed.setOverwrite(false); // a new cell grows over background only, never into its neighbours
    ed.notify(`New cell ${ed.selected}: paint it with the brush (it paints background only).`);
  },
  "label:deselect": (ed) => {
    if (ed.pending || ed.seeds.length || ed.gesture) {
      ed.finishGesture();
      ed.pending = null; ed.seeds = [];
      ed.view.invalidateOverlay();
      ed.emit("state", {});
    } else {
      ed.select(null);
    }
  },
  "edit:undo": (ed) => ed.undo(),
  "edit:redo": (ed) => ed.redo(),
  "brush:smaller": (ed) => ed.setBrushRadius(stepRadius(ed.brushRadius, -1)),
  "brush:larger": (ed) => ed.setBrushRadius(stepRadius(ed.brushRadius, 1)),
  "brush:overwrite": (ed) => {
    ed.setOverwrite(!ed.overwrite);
    ed.notify(ed.overwrite ? "Overwrite on: the brush paints over other cells, the eraser erases every cell."
      : "Overwrite off: the brush paints background only, the eraser erases only the selected cell.");
  },
  "view:feature": (ed) => ed.setLabelDisplay({ feature: ed.features[(ed.features.indexOf(ed.feature) + 1) % ed.features.length] }),
  "view:outline": (ed) => ed.setLabelDisplay({ mode: ed.display.labels.mode === "fill" ? "outline" : "fill" }),
  "view:labels": (ed) => ed.setLabelDisplay({ visible: !ed.display.labels.visible }),
  "view:grayscale": (ed) => {
    const firstVisible = ed.display.channels.findIndex((c) => c.visible);
    ed.setGrayscale(ed.display.grayscaleChannel === null ? Math.max(0, firstVisible) : null);
  },
  "view:channel": (ed, c) => {
    if (c === null || c >= ed.display.channels.length) return;
    if (ed.display.grayscaleChannel !== null) ed.setGrayscale(c);
    else ed.setChannel(c, { visible: !ed.display.channels[c].visible });
  },
  "view:zoomIn": (ed) => ed.view.zoomBy(1.25),
  "view:zoomOut": (ed) => ed.view.zoomBy(0.8),
  "view:fit": (ed) => ed.view.fit(),
});

function armPending(ed, kind, text) {
  if (!ed.canEdit()) return;
  if (ed.selected === null) { ed.notify("Select a cell first (V, then click it)."); return; }
  ed.pending = kind;
  ed.view.updateCursor("crosshair");
  ed.emit("state", { pending: kind });
  ed.notify(text);
}
