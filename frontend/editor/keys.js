/**
 * Keyboard shortcuts: one table (it also feeds the `?` help overlay) and a
 * pure resolver from a keydown event (or any object with the same fields)
 * to an action.
 *
 * Page use:
 * `const hit = resolveKey(event); if (hit) { event.preventDefault(); commands[hit.action](hit.arg); }`
 *
 * @module editor/keys
 */

/**
 * One shortcut.
 *
 * @typedef {object} KeyBinding
 * @property {string} action Command name the page dispatches on.
 * @property {string} key `KeyboardEvent.key` value; letters in lower case.
 * @property {boolean} [mod] Needs Ctrl (or Cmd on macOS).
 * @property {boolean} [shift] Needs Shift (letters only; for symbols the
 *   key value already says it, e.g. "?").
 * @property {number} [arg] Argument passed along (channel index).
 * @property {string} group Help overlay section.
 * @property {string} description Help overlay text.
 */

/** @type {ReadonlyArray<KeyBinding>} */
export const KEYMAP = Object.freeze([
  { action: "tool:select", key: "v", group: "Tools", description: "Select: click a cell to select it (hover shows its id)" },
  { action: "tool:brush", key: "b", group: "Tools", description: "Brush: paint the selected label" },
  { action: "tool:eraser", key: "e", group: "Tools", description: "Eraser: erase to background" },
  { action: "tool:fill", key: "f", group: "Tools", description: "Flood fill: click a region to give it the selected label" },
  { action: "tool:trim", key: "k", group: "Tools", description: "Trim: keep only the clicked piece of a cell" },
  { action: "tool:threshold", key: "t", group: "Tools", description: "Threshold: drag a box to segment a cell (server)" },
  { action: "tool:watershed", key: "w", group: "Tools", description: "Watershed: click two seeds to split a cell (server)" },
  { action: "tool:cut", key: "/", group: "Tools", description: "Cut: drag a line across a cell to split it there" },
  { action: "tool:autofit", key: "a", group: "Tools", description: "Autofit: fit the selected cell to the image edges (server)" },
  { action: "tool:addCell", key: "i", group: "Tools", description: "Add cell: click inside a cell the labels miss; the model's maps outline it (server)" },
  { action: "label:grow", key: "g", group: "Labels", description: "Grow the selected cell by one pixel" },
  { action: "label:shrink", key: "h", group: "Labels", description: "Shrink the selected cell by one pixel" },
  { action: "label:replace", key: "r", group: "Labels", description: "Merge: the next clicked cell becomes the selected one" },
  { action: "label:swap", key: "s", group: "Labels", description: "Swap the ids of the selected and the next clicked cell" },
  { action: "label:delete", key: "Delete", group: "Labels", description: "Delete the selected cell" },
  { action: "label:delete", key: "Backspace", group: "Labels", description: "Delete the selected cell" },
  { action: "label:new", key: "n", group: "Labels", description: "New cell: the next free id, with the brush (safe mode)" },
  { action: "label:deselect", key: "Escape", group: "Labels", description: "Deselect / cancel the current action" },
  { action: "edit:undo", key: "z", mod: true, group: "Edit", description: "Undo" },
  { action: "edit:redo", key: "z", mod: true, shift: true, group: "Edit", description: "Redo" },
  { action: "edit:redo", key: "y", mod: true, group: "Edit", description: "Redo" },
  { action: "brush:smaller", key: "[", group: "Edit", description: "Smaller brush or eraser" },
  { action: "brush:larger", key: "]", group: "Edit", description: "Larger brush or eraser" },
  { action: "brush:overwrite", key: "q", group: "Edit",
    description: "Overwrite on / off: brush and eraser change any cell (off: only background and the selected cell)" },
  { action: "view:feature", key: "x", group: "View", description: "Switch whole-cell / nuclear labels" },
  { action: "view:outline", key: "o", group: "View", description: "Filled / outline labels" },
  { action: "view:labels", key: "l", group: "View", description: "Show / hide labels" },
  { action: "view:grayscale", key: "m", group: "View", description: "Colour composite / single channel in grayscale" },
  { action: "view:zoomIn", key: "=", group: "View", description: "Zoom in" },
  { action: "view:zoomIn", key: "+", group: "View", description: "Zoom in" },
  { action: "view:zoomOut", key: "-", group: "View", description: "Zoom out" },
  { action: "view:fit", key: "0", group: "View", description: "Fit the image to the window" },
  ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => ({
    action: "view:channel", key: String(n), arg: n - 1, group: "View",
    description: `Channel ${n} on / off (grayscale mode: show channel ${n})`,
  })),
  { action: "help", key: "?", group: "Help", description: "Show / hide this list" },
]);

/** `<input>` types that take no typed text: the shortcuts work while one of them has the focus. */
const NON_TEXT_INPUTS = new Set(["checkbox", "radio", "range", "color", "button", "submit", "reset", "file", "image"]);

/**
 * Whether keys typed now belong to a form field: a text input, a text area,
 * a select or editable content. A checkbox, slider or colour well that keeps
 * the focus after a click does not take the shortcuts' letters and digits.
 *
 * @param {{tagName?: string, type?: string, isContentEditable?: boolean}|null} [target]
 * @returns {boolean}
 */
export function isTypingTarget(target) {
  if (!target) return false;
  if (target.isContentEditable) return true;
  const tag = typeof target.tagName === "string" ? target.tagName.toUpperCase() : "";
  if (tag === "INPUT") return !NON_TEXT_INPUTS.has(String(target.type || "text").toLowerCase());
  return tag === "TEXTAREA" || tag === "SELECT";
}

/**
 * Action bound to a key event.
 *
 * @param {{key: string, ctrlKey?: boolean, metaKey?: boolean, shiftKey?: boolean,
 *   altKey?: boolean, target?: object}} event A KeyboardEvent or look-alike.
 * @param {ReadonlyArray<KeyBinding>} [keymap=KEYMAP]
 * @returns {{action: string, arg: number|null}|null} null when the key is not
 *   bound, Alt is held, or the user is typing in a text field ({@link isTypingTarget}).
 */
export function resolveKey(event, keymap = KEYMAP) {
  if (!event || typeof event.key !== "string" || event.altKey || isTypingTarget(event.target)) return null;
  const isLetter = /^[a-z]$/i.test(event.key);
  const key = isLetter ? event.key.toLowerCase() : event.key;
  const mod = Boolean(event.ctrlKey || event.metaKey);
  const shift = Boolean(event.shiftKey);
  for (const b of keymap) {
    if (b.key !== key || Boolean(b.mod) !== mod) continue;
    if (isLetter && Boolean(b.shift) !== shift) continue;
    return { action: b.action, arg: b.arg ?? null };
  }
  return null;
}

/**
 * Human label of a binding, e.g. "Ctrl+Shift+Z", "Del", "[".
 *
 * @param {KeyBinding} binding
 * @param {{mac?: boolean}} [options] `mac`: write Cmd instead of Ctrl.
 * @returns {string}
 */
export function formatBinding(binding, { mac = false } = {}) {
  const names = { Delete: "Del", Backspace: "Backspace", Escape: "Esc" };
  const parts = [];
  if (binding.mod) parts.push(mac ? "Cmd" : "Ctrl");
  if (binding.shift) parts.push("Shift");
  parts.push(names[binding.key] ?? (binding.key.length === 1 ? binding.key.toUpperCase() : binding.key));
  return parts.join("+");
}

/**
 * Rows of the `?` help overlay: bindings with the same action and text are
 * merged ("Del / Backspace"), channel keys are shown as one row.
 *
 * @param {ReadonlyArray<KeyBinding>} [keymap=KEYMAP]
 * @param {{mac?: boolean}} [options]
 * @returns {{group: string, keys: string, description: string}[]} In table order.
 */
export function helpRows(keymap = KEYMAP, options = {}) {
  const rows = [];
  const byText = new Map();
  for (const b of keymap) {
    const description = b.action === "view:channel" ? "Channel 1-9 on / off (grayscale mode: show that channel)" : b.description;
    const id = `${b.action}|${description}`;
    const keys = formatBinding(b, options);
    const row = byText.get(id);
    if (row) {
      if (b.action === "view:channel") row.keys = `1-${b.key}`;
      else row.keys += ` / ${keys}`;
      continue;
    }
    const fresh = { group: b.group, keys, description };
    byText.set(id, fresh);
    rows.push(fresh);
  }
  return rows;
}
