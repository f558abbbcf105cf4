/**
 * Every instant (in-browser) tool, in one import for the page:
 * `import * as tools from "./tools/index.js"`.
 *
 * Editing tools change a layer in place and return one history entry
 * `{bbox, before, after, feature}` (null when nothing changed). Select and
 * new label change nothing: they are `getLabel` and `newLabelId`.
 *
 * @module editor/tools
 */

export { BrushStroke, paintStroke, eraseStroke, discHalfWidths, linePixels, MAX_BRUSH_RADIUS } from "./brush.js";
export { floodFill } from "./fill.js";
export { trimLabel } from "./trim.js";
export { splitAlongLine, cellUnderStroke, MIN_PIECE_PX } from "./line_split.js";
export { growLabel, shrinkLabel } from "./morph.js";
export { replaceLabel, swapLabels, deleteLabel } from "./relabel.js";
export { getLabel as selectLabel, newLabelId } from "../labels.js";
