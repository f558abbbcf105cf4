/**
 * The editor's canvas: an image-resolution RGBA buffer (see tiles.js), a
 * screen canvas that shows it through a zoom/pan viewport, and an overlay
 * canvas for cursors and rubber bands. Edits invalidate a rectangle of the
 * image; the next animation frame repaints that rectangle, uploads it to the
 * tiles it touches and redraws only its part of the screen.
 *
 * Zoom: mouse wheel, centred on the cursor. Pan: Space + drag, or the middle
 * button. Neither scrolls the page (or the page that embeds this one).
 *
 * Rectangles are `[y0, x0, y1, x1]` in image pixels, half-open.
 *
 * @module editor/app/view
 */

import { unionBbox } from "../labels.js";
import {
  clampViewport, fitViewport, imageToScreen, panBy, screenToImage, visibleRect, wheelZoomFactor, zoomAt,
} from "../viewport.js";
import { TiledImage } from "./tiles.js";

/** Zoom limits relative to the fitted scale (min) and absolute (max, screen px per image px). */
const MIN_ZOOM_OF_FIT = 0.5;
const MAX_SCALE = 48;
/** Screen pixels of empty margin allowed around the image when panning. */
const PAN_MARGIN = 120;

/** Canvas view of one image with zoom, pan and dirty-rectangle repaints. */
export class CanvasView {
  /**
   * @param {HTMLElement} stage Positioned element the canvases fill.
   * @param {object} options
   * @param {number} options.width Image width, pixels.
   * @param {number} options.height Image height, pixels.
   * @param {(out: Uint8ClampedArray, rect: number[]) => void} options.paint
   *   Writes the RGBA pixels of `rect` into `out` (`height * width * 4` bytes).
   * @param {(ctx: CanvasRenderingContext2D, view: CanvasView) => void} [options.drawOverlay]
   *   Draws cursors etc. in screen (CSS pixel) coordinates on a cleared overlay.
   * @param {(type: string, event: PointerEvent, point: {x: number, y: number}) => void} [options.onPointer]
   *   Pointer events that are not pan gestures; `point` in image coordinates (floats).
   * @param {(vp: object) => void} [options.onViewChange] Called after zoom / pan / resize.
   */
  constructor(stage, { width, height, paint, drawOverlay = null, onPointer = null, onViewChange = null }) {
    this.stage = stage;
    this.width = width;
    this.height = height;
    this.paint = paint;
    this.drawOverlay = drawOverlay;
    this.onPointer = onPointer;
    this.onViewChange = onViewChange;
    this.screen = makeCanvas(stage, "ll-canvas ll-canvas-image");
    this.overlay = makeCanvas(stage, "ll-canvas ll-canvas-overlay");
    this.image = new TiledImage(width, height);
    this.pixels = this.image.pixels;
    this.dirty = [0, 0, height, width];
    this.screenDirty = true; // true: the whole view; an image rect: that part only
    this.overlayDirty = true;
    this.frame = 0;
    this.viewW = 1;
    this.viewH = 1;
    this.dpr = 1;
    this.viewport = { scale: 1, offsetX: 0, offsetY: 0 };
    this.fitted = true;
    this.spaceDown = false;
    this.pan = null;
    this.pointerInside = false;
    this.listeners = [];
    this.installInput();
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(stage);
    this.resize();
  }

  /** Current viewport `{scale, offsetX, offsetY}` (CSS pixels). */
  get scale() { return this.viewport.scale; }

  /** Follow the stage's size; keeps the fit when the view was fitted. */
  resize() {
    const box = this.stage.getBoundingClientRect();
    const w = Math.max(1, Math.round(box.width));
    const h = Math.max(1, Math.round(box.height));
    const dpr = window.devicePixelRatio || 1;
    if (w === this.viewW && h === this.viewH && dpr === this.dpr && this.screen.width > 1) return;
    this.viewW = w;
    this.viewH = h;
    this.dpr = dpr;
    for (const canvas of [this.screen, this.overlay]) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.width = `${w}px`;
      canvas.style.height = `${h}px`;
    }
    this.measure();
    if (this.fitted) this.fit();
    else this.setViewport(this.viewport);
  }

  /** Show the whole image, centred. */
  fit() {
    this.fitted = true;
    this.setViewport(fitViewport(this.width, this.height, this.viewW, this.viewH, { padding: 12, maxScale: MAX_SCALE }), true);
  }

  /** Scale at which the whole image fits the view. */
  fitScale() {
    return fitViewport(this.width, this.height, this.viewW, this.viewH, { padding: 12, maxScale: MAX_SCALE }).scale;
  }

  /**
   * Set the viewport (clamped so the image stays in view) and redraw.
   *
   * @param {{scale: number, offsetX: number, offsetY: number}} vp
   * @param {boolean} [keepFitted=false] Whether this is the fitted view.
   */
  setViewport(vp, keepFitted = false) {
    this.fitted = keepFitted;
    this.viewport = clampViewport(vp, this.width, this.height, this.viewW, this.viewH, { margin: PAN_MARGIN });
    this.screenDirty = true;
    this.overlayDirty = true;
    this.schedule();
    if (this.onViewChange) this.onViewChange(this.viewport);
  }

  /**
   * Zoom by a factor around a screen point (default: the view's centre).
   *
   * @param {number} factor > 1 zooms in.
   * @param {number} [sx] Screen x, CSS pixels from the stage's left edge.
   * @param {number} [sy] Screen y, CSS pixels from the stage's top edge.
   */
  zoomBy(factor, sx = this.viewW / 2, sy = this.viewH / 2) {
    const minScale = Math.min(1, this.fitScale() * MIN_ZOOM_OF_FIT);
    this.setViewport(zoomAt(this.viewport, factor, sx, sy, { minScale, maxScale: MAX_SCALE }));
  }

  /**
   * Image coordinates of a pointer event (floats; pixel (y, x) covers [x, x+1) x [y, y+1)).
   *
   * @param {{clientX: number, clientY: number}} event
   * @returns {{x: number, y: number}}
   */
  eventToImage(event) {
    const box = this.overlayBox || this.measure();
    return screenToImage(this.viewport, event.clientX - box.left, event.clientY - box.top);
  }

  /**
   * The overlay canvas's client rectangle, cached: reading it in every
   * pointer move would force a layout per event. Re-measured on resize and
   * at the start of each gesture.
   */
  measure() {
    this.overlayBox = this.overlay.getBoundingClientRect();
    return this.overlayBox;
  }

  /**
   * Viewport (client) coordinates of an image point: where to point the mouse
   * to hit it (tests, benchmarks).
   *
   * @param {number} y Image row coordinate (pixel centre: row + 0.5).
   * @param {number} x Image column coordinate.
   * @returns {{x: number, y: number}} Client CSS pixels of this document.
   */
  imageToClient(y, x) {
    const box = this.overlay.getBoundingClientRect();
    const p = imageToScreen(this.viewport, x, y);
    return { x: box.left + p.x, y: box.top + p.y };
  }

  /**
   * Mark image pixels for repaint on the next frame.
   *
   * @param {number[]} [rect] `[y0, x0, y1, x1]`; default the whole image.
   */
  invalidate(rect = [0, 0, this.height, this.width]) {
    const r = [Math.max(0, rect[0]), Math.max(0, rect[1]), Math.min(this.height, rect[2]), Math.min(this.width, rect[3])];
    if (r[0] >= r[2] || r[1] >= r[3]) return;
    this.dirty = unionBbox(this.dirty, r);
    this.schedule();
  }

  /** Redraw the overlay (cursor, rubber band) on the next frame. */
  invalidateOverlay() {
    this.overlayDirty = true;
    this.schedule();
  }

  /** Ask for a repaint on the next animation frame. */
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.renderNow();
    });
  }

  /** Repaint what is pending, now (the animation frame calls this; benchmarks too). */
  renderNow() {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    if (this.dirty) {
      const rect = this.dirty;
      this.dirty = null;
      this.paint(this.pixels, rect);
      this.image.upload(rect);
      if (this.screenDirty !== true) this.screenDirty = unionBbox(this.screenDirty || null, rect);
    }
    if (this.screenDirty) {
      const part = this.screenDirty === true ? null : this.screenDirty;
      this.screenDirty = false;
      this.drawScreen(part);
    }
    if (this.overlayDirty) {
      this.overlayDirty = false;
      const ctx = this.overlay.getContext("2d");
      ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
      ctx.clearRect(0, 0, this.viewW, this.viewH);
      if (this.drawOverlay) this.drawOverlay(ctx, this);
    }
  }

  /** Draw the visible image (or only `part` of it) on the screen canvas. */
  drawScreen(part = null) {
    const visible = visibleRect(this.viewport, this.width, this.height, this.viewW, this.viewH);
    this.image.draw(this.screen.getContext("2d"), this.viewport, this.dpr, visible, part);
  }

  /** Stop listening (the page is tearing the editor down). */
  destroy() {
    this.resizeObserver.disconnect();
    for (const [target, type, fn, opts] of this.listeners) target.removeEventListener(type, fn, opts);
    if (this.frame) cancelAnimationFrame(this.frame);
  }

  listen(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    this.listeners.push([target, type, fn, opts]);
  }

  installInput() {
    const o = this.overlay;
    this.listen(o, "wheel", (e) => {
      e.preventDefault();
      const box = this.overlayBox || this.measure();
      const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaMode === 2 ? e.deltaY * this.viewH : e.deltaY;
      this.zoomBy(wheelZoomFactor(delta), e.clientX - box.left, e.clientY - box.top);
    }, { passive: false });
    this.listen(window, "keydown", (e) => {
      if (e.key === " " && !isTyping(e.target) && !isControl(e.target)) {
        e.preventDefault(); // Space never scrolls this page or its host
        if (!this.spaceDown) { this.spaceDown = true; this.updateCursor(); }
      }
    });
    this.listen(window, "keyup", (e) => {
      if (e.key === " ") { this.spaceDown = false; this.updateCursor(); }
    });
    this.listen(window, "blur", () => { this.spaceDown = false; this.updateCursor(); });
    this.listen(o, "pointerdown", (e) => {
      this.measure();
      if (e.button === 1 || (e.button === 0 && this.spaceDown)) {
        e.preventDefault();
        capture(o, e.pointerId);
        this.pan = { id: e.pointerId, x: e.clientX, y: e.clientY };
        this.updateCursor();
        return;
      }
      if (e.button !== 0) return;
      capture(o, e.pointerId);
      this.forward("down", e);
    });
    this.listen(o, "pointermove", (e) => {
      if (this.pan && e.pointerId === this.pan.id) {
        this.setViewport(panBy(this.viewport, e.clientX - this.pan.x, e.clientY - this.pan.y));
        this.pan.x = e.clientX;
        this.pan.y = e.clientY;
        return;
      }
      this.forward("move", e);
    });
    const end = (e) => {
      if (this.pan && e.pointerId === this.pan.id) {
        this.pan = null;
        this.updateCursor();
        return;
      }
      this.forward(e.type === "pointercancel" ? "cancel" : "up", e);
    };
    this.listen(o, "pointerup", end);
    this.listen(o, "pointercancel", end);
    this.listen(o, "pointerenter", () => { this.pointerInside = true; this.measure(); });
    this.listen(window, "resize", () => this.measure());
    this.listen(o, "pointerleave", (e) => { this.pointerInside = false; this.forward("leave", e); });
    this.listen(o, "contextmenu", (e) => e.preventDefault());
    this.listen(o, "auxclick", (e) => e.preventDefault());
  }

  forward(type, event) {
    if (this.onPointer) this.onPointer(type, event, this.eventToImage(event));
  }

  /** Cursor for the current pan state; `base` is the tool's cursor. */
  updateCursor(base = this.toolCursor || "default") {
    this.toolCursor = base;
    this.overlay.style.cursor = this.pan ? "grabbing" : this.spaceDown ? "grab" : base;
  }
}

function makeCanvas(parent, className) {
  const canvas = document.createElement("canvas");
  canvas.className = className;
  parent.appendChild(canvas);
  return canvas;
}

/** Keep receiving a pointer's events outside the canvas (strokes that leave it). */
function capture(element, pointerId) {
  try {
    element.setPointerCapture(pointerId);
  } catch {
    /* not an active pointer (synthetic events): the stroke still works inside the canvas */
  }
}

/** Buttons and dialogs keep Space for activating them. */
function isControl(target) {
  return target instanceof Element && Boolean(target.closest("button, dialog, summary"));
}

function isTyping(target) {
  const tag = target && target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
}
