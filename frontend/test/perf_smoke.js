/**
 * Speed smoke check of the brush (not a test): median milliseconds to apply
 * one 20-point brush stroke (radius 8) and redraw, on a 270² crop and a
 * 2048² image, in Node.
 *
 *   node frontend/test/perf_smoke.js
 *
 * Two redraw styles are timed:
 * - "stroke": apply the whole stroke, then composite 3 channels + draw the
 *   labels on the stroke's dirty rectangle once (the entry's bbox ± 1);
 * - "per move": what the page does on each pointer move: add the point, then
 *   redraw that move's dirty rectangle.
 * Points are spaced 6 px on the crop (a zoomed-in crop) and 24 px on the
 * large image (a zoomed-out view), along a gentle curve.
 *
 * Prints a table, then as the last line one JSON object. `node --test
 * frontend/test/` also runs this file (it runs every .js in a test folder);
 * then it does a few iterations only, as a smoke check that it still works.
 */

import { BrushStroke } from "../editor/tools/brush.js";
import { applyPatch, createLayer, growBbox } from "../editor/labels.js";
import { compositeChannels, drawLabels } from "../editor/render.js";

const UNDER_TEST_RUNNER = Boolean(process.env.NODE_TEST_CONTEXT);
const RADIUS = 8;
const POINTS = 20;
const CHANNELS = 3;

function scene(size) {
  const w = size, h = size;
  const channels = new Uint8Array(CHANNELS * w * h);
  let seed = 12345;
  for (let i = 0; i < channels.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    channels[i] = seed >>> 24;
  }
  // Square "cells" of 14 px with 2 px background gaps: plenty of outlines.
  const data = new Int32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (y % 16 < 14 && x % 16 < 14) data[y * w + x] = 1 + ((y >> 4) * Math.ceil(w / 16) + (x >> 4));
    }
  }
  const layer = createLayer(w, h, data);
  const out = new Uint8ClampedArray(w * h * 4);
  const settings = [
    { colour: [255, 0, 0], range: [10, 240], gamma: 0.8 },
    { colour: [0, 255, 0], range: [0, 255], contrast: 1.2 },
    { colour: [0, 0, 255], range: [20, 200], invert: false, brightness: 0.1 },
  ];
  compositeChannels(channels, CHANNELS, w, h, settings, out);
  drawLabels(layer, out, undefined, { mode: "fill", opacity: 0.4 });
  return { w, h, channels, layer, out, settings };
}

function strokePoints(size, spacing) {
  const cx = size / 2 - (spacing * (POINTS - 1)) / 2;
  const cy = size / 2;
  return Array.from({ length: POINTS }, (_, i) => [cy + 2 * spacing * Math.sin((i / (POINTS - 1)) * Math.PI * 2), cx + spacing * i]);
}

function redraw(s, rect) {
  compositeChannels(s.channels, CHANNELS, s.w, s.h, s.settings, s.out, rect);
  drawLabels(s.layer, s.out, rect, { mode: "fill", opacity: 0.4, selected: 7 });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
}

function timeStroke(s, points, perMove) {
  const t0 = performance.now();
  const stroke = new BrushStroke(s.layer, { label: 999999, radius: RADIUS });
  for (const [y, x] of points) {
    const dirty = stroke.addPoint(y, x);
    if (perMove && dirty) redraw(s, growBbox(dirty, 1, s.h, s.w));
  }
  const entry = stroke.finish();
  if (!perMove) redraw(s, growBbox(entry.bbox, 1, s.h, s.w));
  const ms = performance.now() - t0;
  applyPatch(s.layer, entry.bbox, entry.before); // restore, untimed
  redraw(s, growBbox(entry.bbox, 1, s.h, s.w));
  return { ms, bbox: entry.bbox };
}

function bench(size, spacing, reps) {
  const s = scene(size);
  const points = strokePoints(size, spacing);
  const results = {};
  for (const perMove of [false, true]) {
    for (let i = 0; i < Math.min(10, reps); i++) timeStroke(s, points, perMove); // warm-up
    const times = [];
    let bbox = null;
    for (let i = 0; i < reps; i++) {
      const r = timeStroke(s, points, perMove);
      times.push(r.ms);
      bbox = r.bbox;
    }
    results[perMove ? "perMove" : "stroke"] = { median: median(times), max: Math.max(...times), bbox };
  }
  return results;
}

const reps = UNDER_TEST_RUNNER ? 3 : 200;
const small = bench(270, 6, reps);
const large = bench(2048, 24, UNDER_TEST_RUNNER ? 3 : 100);

const fmt = (v) => v.toFixed(3).padStart(8);
console.log(`brush stroke: ${POINTS} points, radius ${RADIUS}, ${CHANNELS} channels composited + labels (fill) redrawn; node ${process.version}; ${reps} reps`);
console.log("image   spacing  stroke bbox (h x w)   stroke+redraw ms (median / max)   per-move redraws ms (median / max)");
for (const [name, spacing, r] of [["270²", 6, small], ["2048²", 24, large]]) {
  const b = r.stroke.bbox;
  console.log(`${name.padEnd(7)} ${String(spacing).padStart(4)} px  ${`${b[2] - b[0]} x ${b[3] - b[1]}`.padEnd(20)} ${fmt(r.stroke.median)} / ${fmt(r.stroke.max)}              ${fmt(r.perMove.median)} / ${fmt(r.perMove.max)}`);
}
console.log(JSON.stringify({
  brush_ms_270: Number(small.stroke.median.toFixed(3)),
  brush_ms_2048: Number(large.stroke.median.toFixed(3)),
  brush_ms_270_per_move: Number(small.perMove.median.toFixed(3)),
  brush_ms_2048_per_move: Number(large.perMove.median.toFixed(3)),
  reps,
}));
