/**
 * Pointer gestures of the editor's tools, and the overlay that shows them
 * (brush cursor, threshold box, watershed seeds, hovered id).
 *
 * - select: click a cell;
 * - brush / eraser: drag; the stroke is stamped between pointer events and
 *   becomes one undo entry on release; safe mode (paint_mode.js) keeps other cells;
 * - fill, trim: click;
 * - threshold: drag a box (server);
 * - watershed: click two points inside one cell (server);
 * - cut: drag a line across a cell; on release the cell is split along it;
 * - addCell: click inside a cell the labels miss (server);
 * - after "merge" (R) or "swap" (S): click the other cell.
 *
 * @module editor/app/gestures
 */

import { getLabel, growBbox } from "../labels.js";
import { eraserTarget, protectedStrokeMessage, strokeOptions } from "../paint_mode.js";
import * as tools from "../tools/index.js";
import { SPLIT_MARGIN_PX, cellBox, clickBox } from "./server_tools.js";

/** CSS cursor of each tool (space-drag panning overrides it). */
export const TOOL_CURSORS = Object.freeze({
  select: "default", brush: "none", eraser: "none", fill: "crosshair", trim: "crosshair",
  threshold: "crosshair", watershed: "crosshair", cut: "crosshair", addCell: "crosshair",
});

/** Thousands separators of the hover readout's cell size. */
const PX = new Intl.NumberFormat("en");

/** Smallest threshold box side, pixels. */
const MIN_BOX_PX = 3;

/**
 * Handle one pointer event of the canvas.
 *
 * @param {import("./editor.js").Editor} ed
 * @param {"down"|"move"|"up"|"cancel"|"leave"} type
 * @param {PointerEvent} event
 * @param {{x: number, y: number}} point Image coordinates (floats).
 */
export function handlePointer(ed, type, event, point) {
  const py = Math.floor(point.y);
  const px = Math.floor(point.x);
  updateHover(ed, type === "leave" ? null : { y: py, x: px });
  if (type === "leave") return;
  if (type === "down" && ed.pending) {
    finishPending(ed, py, px);
    return;
  }
  const handler = HANDLERS[ed.tool];
  if (handler) handler(ed, type, event, py, px);
}

function updateHover(ed, pixel) {
  const inside = pixel && pixel.y >= 0 && pixel.x >= 0 && pixel.y < ed.height && pixel.x < ed.width;
  const next = inside ? { y: pixel.y, x: pixel.x, id: getLabel(ed.layer, pixel.y, pixel.x) } : null;
  const prev = ed.hover;
  ed.hoverPoint = pixel;
  if (prev === next || (prev && next && prev.y === next.y && prev.x === next.x && prev.id === next.id)) {
    if (ed.tool === "brush" || ed.tool === "eraser") ed.view.invalidateOverlay();
    return;
  }
  ed.hover = next;
  ed.view.invalidateOverlay();
  ed.emit("hover", next);
}

function finishPending(ed, y, x) {
  const kind = ed.pending;
  const id = getLabel(ed.layer, y, x);
  if (id <= 0) {
    ed.notify("Click a cell (not background), or press Esc to cancel.");
    return;
  }
  ed.pending = null;
  ed.view.updateCursor(TOOL_CURSORS[ed.tool]);
  ed.emit("state", { pending: null });
  if (id === ed.selected) {
    ed.notify("That is the selected cell itself; nothing to do.");
    return;
  }
  if (!ed.canEdit()) return;
  const options = { feature: ed.feature };
  const entry = kind === "merge"
    ? tools.replaceLabel(ed.layer, id, ed.selected, options)
    : tools.swapLabels(ed.layer, ed.selected, id, options);
  ed.commit(entry);
}

function strokeHandler(erase) {
  return (ed, type, event, y, x) => {
    if (type === "down") {
      if (!ed.canEdit()) return;
      const safeEraser = erase && !ed.overwrite;
      const target = safeEraser ? eraserTarget(ed.selected, getLabel(ed.layer, y, x)) : null;
      if (safeEraser && target === null) { ed.notify(protectedStrokeMessage({ erase, target })); return; }
      if (safeEraser) ed.select(target); // the cell it erases is the one highlighted
      const options = strokeOptions({ erase, overwrite: ed.overwrite, radius: ed.brushRadius, feature: ed.feature,
        label: erase ? undefined : ed.paintLabel(), target });
      ed.gesture = { stroke: new tools.BrushStroke(ed.layer, options), target };
      addStrokePoint(ed, y, x);
    } else if (type === "move" && ed.gesture && ed.gesture.stroke) {
      for (const [py, px] of pointerPath(ed, event, y, x)) addStrokePoint(ed, py, px);
    } else if ((type === "up" || type === "cancel") && ed.gesture && ed.gesture.stroke) {
      const { stroke, target } = ed.gesture;
      ed.gesture = null;
      if (!ed.commit(stroke.finish()) && stroke.blocked > 0) ed.notify(protectedStrokeMessage({ erase, target }));
    }
  };
}

/** Image pixels `[y, x]` a pointermove passed through: its coalesced events, or the event's own pixel. */
function pointerPath(ed, event, y, x) {
  const points = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [];
  if (points.length <= 1) return [[y, x]];
  return points.map((p) => {
    const q = ed.view.eventToImage(p);
    return [Math.floor(q.y), Math.floor(q.x)];
  });
}

function cutAlongLine(ed, line) {
  const label = tools.cellUnderStroke(ed.layer, line, ed.selected);
  if (label === null) {
    ed.notify("Draw the line across the cell to cut, from one side of it to the other.");
    return;
  }
  const entry = tools.splitAlongLine(ed.layer, line, { label, nextId: ed.nextLabelId(), feature: ed.feature });
  if (!ed.commit(entry)) {
    ed.notify(`The line does not cut cell #${label} in two: draw it from outside the cell, across it, `
      + "to outside on the other side.");
  }
}

function addStrokePoint(ed, y, x) {
  const dirty = ed.gesture.stroke.addPoint(y, x);
  if (dirty) ed.view.invalidate(growBbox(dirty, 1, ed.height, ed.width));
}

const HANDLERS = {
  select(ed, type, event, y, x) {
    if (type !== "down") return;
    const id = getLabel(ed.layer, y, x);
    ed.select(id > 0 ? id : null);
  },
  brush: strokeHandler(false),
  eraser: strokeHandler(true),
  fill(ed, type, event, y, x) {
    if (type !== "down" || !ed.canEdit()) return;
    if (getLabel(ed.layer, y, x) < 0) return;
    const label = ed.paintLabel();
    if (!ed.commit(tools.floodFill(ed.layer, y, x, { label, feature: ed.feature }))) {
      ed.notify("That region already has the selected cell's id.");
    }
  },
  trim(ed, type, event, y, x) {
    if (type !== "down" || !ed.canEdit()) return;
    if (!ed.commit(tools.trimLabel(ed.layer, y, x, { feature: ed.feature }))) {
      ed.notify("Click a cell that is in several pieces: trim keeps the clicked piece.");
    }
  },
  threshold(ed, type, event, y, x) {
    if (type === "down") {
      if (!ed.canEdit()) return;
      ed.gesture = { box: { y0: y, x0: x, y1: y, x1: x } };
    } else if (type === "move" && ed.gesture && ed.gesture.box) {
      ed.gesture.box.y1 = y;
      ed.gesture.box.x1 = x;
      ed.view.invalidateOverlay();
    } else if ((type === "up" || type === "cancel") && ed.gesture && ed.gesture.box) {
      const bbox = boxOf(ed.gesture.box, ed.height, ed.width);
      ed.gesture = null;
      ed.view.invalidateOverlay();
      if (type === "cancel") return;
      if (!bbox || bbox[2] - bbox[0] < MIN_BOX_PX || bbox[3] - bbox[1] < MIN_BOX_PX) {
        ed.notify("Drag a box around the cell to threshold (at least 3 px on each side).");
        return;
      }
      const label = ed.paintLabel();
      ed.runServerTool("threshold", { bbox, label, ...ed.thresholdOptions });
    }
  },
  watershed(ed, type, event, y, x) {
    if (type !== "down" || !ed.canEdit()) return;
    const id = getLabel(ed.layer, y, x);
    if (ed.seeds.length === 0) {
      if (id <= 0) { ed.notify("Click inside the cell to split: first seed."); return; }
      ed.seeds = [[y, x]];
      ed.splitLabel = id;
      ed.select(id);
      ed.view.invalidateOverlay();
      ed.notify("Now click a second point inside the same cell, where the other piece lies.");
      return;
    }
    if (id !== ed.splitLabel) { ed.notify("Both seeds must lie inside the same cell; Esc starts over."); return; }
    if (ed.seeds.some(([sy, sx]) => sy === y && sx === x)) return;
    const seeds = [...ed.seeds, [y, x]];
    ed.seeds = seeds;
    ed.view.invalidateOverlay();
    const bbox = cellBox(ed.layer, id, SPLIT_MARGIN_PX);
    const nextId = ed.nextLabelId();
    ed.runServerTool("watershed_split", { bbox, label: id, seeds, nextId }).finally(() => {
      ed.seeds = [];
      ed.view.invalidateOverlay();
    });
  },
  cut(ed, type, event, y, x) {
    if (type === "down") {
      if (!ed.canEdit()) return;
      ed.gesture = { line: [[y, x]] };
      ed.view.invalidateOverlay();
    } else if (type === "move" && ed.gesture && ed.gesture.line) {
      ed.gesture.line.push(...pointerPath(ed, event, y, x));
      ed.view.invalidateOverlay();
    } else if ((type === "up" || type === "cancel") && ed.gesture && ed.gesture.line) {
      const line = ed.gesture.line;
      ed.gesture = null;
      ed.view.invalidateOverlay();
      if (type === "up") cutAlongLine(ed, [...line, [y, x]]);
    }
  },
  addCell(ed, type, event, y, x) {
    if (type !== "down" || !ed.canEdit()) return;
    const bbox = clickBox(y, x, ed.height, ed.width);
    if (!bbox) return;
    const id = getLabel(ed.layer, y, x);
    if (id > 0) { ed.notify(`That is cell ${id}; click inside a cell no label covers yet.`); return; }
    const nextId = ed.nextLabelId();
    ed.runServerTool("add_cell", { bbox, point: [y, x], nextId }).then((changed) => { if (changed) ed.select(nextId); });
  },
};

function boxOf(b, height, width) {
  const y0 = Math.max(0, Math.min(b.y0, b.y1));
  const x0 = Math.max(0, Math.min(b.x0, b.x1));
  const y1 = Math.min(height, Math.max(b.y0, b.y1) + 1);
  const x1 = Math.min(width, Math.max(b.x0, b.x1) + 1);
  return y0 < y1 && x0 < x1 ? [y0, x0, y1, x1] : null;
}

/**
 * Draw cursors and gesture feedback on the cleared overlay.
 *
 * @param {import("./editor.js").Editor} ed
 * @param {CanvasRenderingContext2D} ctx Screen CSS-pixel coordinates.
 * @param {import("./view.js").CanvasView} view
 */
export function drawOverlay(ed, ctx, view) {
  const { scale, offsetX, offsetY } = view.viewport;
  const sx = (x) => x * scale + offsetX;
  const sy = (y) => y * scale + offsetY;
  const hover = ed.hoverPoint;
  if (hover && view.pointerInside && (ed.tool === "brush" || ed.tool === "eraser") && !ed.readOnly) {
    const r = (ed.brushRadius + 0.5) * scale;
    const colour = ed.tool === "eraser" ? "#ff6b6b" : ed.overwrite ? "#ffb347" : "#ffffff"; // overwrite: orange
    ring(ctx, sx(hover.x + 0.5), sy(hover.y + 0.5), Math.max(2, r), colour);
  } else if (hover && view.pointerInside && scale >= 6) {
    ctx.strokeStyle = "rgba(255,255,255,0.8)";
    ctx.lineWidth = 1;
    ctx.strokeRect(sx(hover.x) + 0.5, sy(hover.y) + 0.5, scale - 1, scale - 1);
  }
  if (ed.gesture && ed.gesture.box) {
    const b = boxOf(ed.gesture.box, ed.height, ed.width);
    if (b) {
      ctx.save();
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#ffd54a";
      ctx.fillStyle = "rgba(255,213,74,0.08)";
      ctx.fillRect(sx(b[1]), sy(b[0]), (b[3] - b[1]) * scale, (b[2] - b[0]) * scale);
      ctx.strokeRect(sx(b[1]), sy(b[0]), (b[3] - b[1]) * scale, (b[2] - b[0]) * scale);
      ctx.restore();
    }
  }
  if (ed.gesture && ed.gesture.line) drawLine(ctx, ed.gesture.line.map(([y, x]) => [sx(x + 0.5), sy(y + 0.5)]));
  for (const [y, x] of ed.seeds) {
    const cx = sx(x + 0.5), cy = sy(y + 0.5);
    ring(ctx, cx, cy, 6, "#ffd54a");
    ctx.fillStyle = "#ffd54a";
    ctx.fillRect(cx - 1.5, cy - 1.5, 3, 3);
  }
  if (ed.hover && ed.hover.id > 0 && view.pointerInside) {
    const area = ed.cellAreas.of(ed.feature).area(ed.hover.id);
    idTag(ctx, sx(ed.hover.x + 1) + 10, sy(ed.hover.y + 1) + 10, `#${ed.hover.id} · ${PX.format(area)} px`, view);
  }
}

function drawLine(ctx, points) {
  ctx.save();
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const [width, colour] of [[4, "rgba(0,0,0,0.55)"], [2, "#ffd54a"]]) {
    ctx.lineWidth = width;
    ctx.strokeStyle = colour;
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (points.length === 1) ctx.lineTo(points[0][0] + 0.1, points[0][1]);
    ctx.stroke();
  }
  ctx.restore();
}

function ring(ctx, x, y, r, colour) {
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(0,0,0,0.55)";
  ctx.beginPath(); ctx.arc(x, y, r, 0, Math.PI * 2); ctx.stroke();
  ctx.lineWidth = 1.25;
  ctx.strokeStyle = colour;
  ctx.beginPath(); ctx.arc(x, y, r, 0, Math.PI * 2); ctx.stroke();
}

function idTag(ctx, x, y, text, view) {
  ctx.font = "12px ui-monospace, SFMono-Regular, Menlo, monospace";
  const w = ctx.measureText(text).width + 10;
  const left = Math.min(x, view.viewW - w - 4);
  const top = Math.min(y, view.viewH - 22);
  ctx.fillStyle = "rgba(15,18,25,0.85)";
  ctx.fillRect(left, top, w, 18);
  ctx.fillStyle = "#e8ecf4";
  ctx.fillText(text, left + 5, top + 13);
}
