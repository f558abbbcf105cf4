/**
 * Finding your place: a minimap of the whole image with the part in view
 * outlined (click or drag on it to move the view) and the zoom controls
 * (zoom out, zoom in, fit, 100 %) with the current zoom, in a corner of the
 * editor's stage. Both editors (crowd annotate, review) build one.
 *
 * The minimap draws the editor's own image tiles scaled down, so it shows
 * the channels and labels as the canvas does; it is redrawn a few times a
 * second at most after edits and display changes, and its viewport
 * rectangle on every zoom or pan.
 *
 * @module editor/app/navigator
 */

import { centreAt, minimapRect, minimapSize } from "../viewport.js";

/** Longest side of the minimap, CSS pixels. */
export const MINIMAP_PX = 160;
/** Least milliseconds between two redraws of the minimap's picture. */
const PICTURE_EVERY_MS = 250;
/** Zoom factor of the + and − buttons. */
const ZOOM_STEP = 1.5;

function button(action, text, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "ll-nav-button";
  b.dataset.action = action;
  b.textContent = text;
  b.title = title;
  b.setAttribute("aria-label", title);
  return b;
}

/**
 * Build the navigator into the editor's stage.
 *
 * @param {import("./editor.js").Editor} editor
 * @returns {{element: HTMLElement, refresh: () => void}} `refresh` redraws
 *   the picture now (after a change the editor does not announce).
 */
export function buildNavigator(editor) {
  const view = editor.view;
  const { width, height, k } = minimapSize(view.width, view.height, MINIMAP_PX);
  const root = document.createElement("div");
  root.className = "ll-nav";
  root.dataset.role = "navigator";
  const map = document.createElement("canvas");
  map.className = "ll-minimap";
  map.title = "The whole image: click or drag to move the view";
  map.style.width = `${width}px`;
  map.style.height = `${height}px`;
  const picture = document.createElement("canvas");
  const zoom = document.createElement("output");
  zoom.className = "ll-nav-zoom";
  const bar = document.createElement("div");
  bar.className = "ll-nav-bar";
  const actions = {
    "zoom-out": () => view.zoomBy(1 / ZOOM_STEP),
    "zoom-in": () => view.zoomBy(ZOOM_STEP),
    fit: () => view.fit(),
    actual: () => view.zoomBy(1 / view.scale),
  };
  bar.append(button("zoom-out", "−", "Zoom out (-)"), zoom, button("zoom-in", "+", "Zoom in (+)"),
    button("fit", "Fit", "Fit the image to the view (0)"), button("actual", "100%", "One image pixel per screen pixel"));
  bar.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    actions[b.dataset.action]();
    b.blur(); // the keys stay with the editor
  });
  root.append(map, bar);
  view.stage.appendChild(root);

  const dpr = () => window.devicePixelRatio || 1;
  const drawPicture = () => {
    const d = dpr();
    picture.width = Math.round(width * d);
    picture.height = Math.round(height * d);
    const ctx = picture.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "medium";
    const f = k * d;
    for (const t of view.image.tiles) ctx.drawImage(t.canvas, t.x * f, t.y * f, t.w * f, t.h * f);
  };
  const drawMap = () => {
    const d = dpr();
    if (map.width !== Math.round(width * d)) { map.width = Math.round(width * d); map.height = Math.round(height * d); }
    const ctx = map.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, map.width, map.height);
    ctx.drawImage(picture, 0, 0);
    const r = minimapRect(view.viewport, view.width, view.height, view.viewW, view.viewH, k);
    root.dataset.whole = String(!r || (r.w >= width - 0.5 && r.h >= height - 0.5));
    if (r) {
      ctx.setTransform(d, 0, 0, d, 0, 0);
      ctx.lineWidth = 3;
      ctx.strokeStyle = "rgba(0,0,0,0.6)";
      ctx.strokeRect(r.x + 0.5, r.y + 0.5, Math.max(2, r.w - 1), Math.max(2, r.h - 1));
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(r.x + 0.5, r.y + 0.5, Math.max(2, r.w - 1), Math.max(2, r.h - 1));
    }
    zoom.textContent = `${Math.round(view.scale * 100)}%`;
  };
  let timer = 0;
  let last = 0;
  const refresh = () => {
    clearTimeout(timer);
    timer = 0;
    last = performance.now();
    view.renderNow(); // the tiles hold what the canvas shows
    drawPicture();
    drawMap();
  };
  const schedule = () => {
    if (timer) return;
    timer = setTimeout(refresh, Math.max(0, last + PICTURE_EVERY_MS - performance.now()));
  };
  editor.addEventListener("edit", schedule);
  editor.addEventListener("state", (e) => {
    if (e.detail.display || e.detail.selected !== undefined) schedule();
    if (e.detail.view) drawMap();
  });

  let dragging = null;
  const moveTo = (event) => {
    const box = map.getBoundingClientRect();
    const x = (event.clientX - box.left) / k;
    const y = (event.clientY - box.top) / k;
    view.setViewport(centreAt(view.viewport, x, y, view.viewW, view.viewH));
  };
  map.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    dragging = e.pointerId;
    try { map.setPointerCapture(e.pointerId); } catch { /* synthetic pointer: moves still arrive */ }
    moveTo(e);
  });
  map.addEventListener("pointermove", (e) => { if (dragging === e.pointerId) moveTo(e); });
  const stop = (e) => { if (dragging === e.pointerId) dragging = null; };
  map.addEventListener("pointerup", stop);
  map.addEventListener("pointercancel", stop);
  for (const type of ["wheel", "contextmenu"]) root.addEventListener(type, (e) => e.preventDefault(), { passive: false });

  requestAnimationFrame(refresh);
  return { element: root, refresh };
}
