/**
 * Pure rendering into an RGBA buffer (the `data` of a canvas `ImageData`):
 * channel compositing, then label overlay, both limited to a dirty rectangle.
 *
 * Redraw after an edit of `bbox`: `rect = growBbox(bbox, 1, h, w)` (outlines
 * of the neighbours change too), `compositeChannels(..., rect)`, then
 * `drawLabels(layer, out, rect, ...)`, then
 * `ctx.putImageData(imageData, 0, 0, rect[1], rect[0], rect[3] - rect[1], rect[2] - rect[0])`.
 *
 * Rectangles are `[y0, x0, y1, x1]` in image pixels, half-open.
 *
 * @module editor/render
 */

/**
 * Display settings of one channel, every field optional.
 *
 * @typedef {object} ChannelSetting
 * @property {boolean} [visible=true] Channel on/off.
 * @property {number[]} [colour=[255,255,255]] RGB, 0..255 each, added at full intensity.
 * @property {number[]} [range=[0,255]] Display range lo, hi in 0..255: lo and
 *   below show black, hi and above full colour.
 * @property {number} [gamma=1] Exponent on the range-scaled intensity t in
 *   0..1: t ** gamma (< 1 brightens mid-tones).
 * @property {number} [contrast=1] Slope around mid-grey: (t - 0.5) * contrast + 0.5.
 * @property {number} [brightness=0] Offset added to t, -1..1.
 * @property {boolean} [invert=false] t -> 1 - t, applied last.
 */

function checkRect(rect, w, h) {
  const [y0, x0, y1, x1] = rect;
  if (!(y0 >= 0 && x0 >= 0 && y1 <= h && x1 <= w && y0 <= y1 && x0 <= x1)) {
    throw new RangeError(`rectangle [${rect}] does not fit the ${h}x${w} image`);
  }
}

/**
 * Displayed intensity of each raw channel value, in the order range, gamma,
 * contrast, brightness (clamped to 0..1 after each), invert.
 *
 * @param {ChannelSetting} setting
 * @returns {Float64Array} 256 intensities in 0..1, indexed by the uint8 value.
 */
export function intensityLut(setting = {}) {
  const { range = [0, 255], gamma = 1, contrast = 1, brightness = 0, invert = false } = setting;
  const [lo, hi] = range;
  if (!(gamma > 0)) throw new RangeError(`gamma must be positive, got ${gamma}`);
  const lut = new Float64Array(256);
  for (let v = 0; v < 256; v++) {
    let t = hi > lo ? (v - lo) / (hi - lo) : v >= hi ? 1 : 0;
    t = Math.min(1, Math.max(0, t));
    t = t ** gamma;
    t = Math.min(1, Math.max(0, (t - 0.5) * contrast + 0.5 + brightness));
    lut[v] = invert ? 1 - t : t;
  }
  return lut;
}

/**
 * Per-colour-component lookup tables of one channel.
 *
 * @param {ChannelSetting} setting
 * @param {number[]} [colour] Overrides the setting's colour (grayscale mode).
 * @returns {Uint8Array[]} `[red, green, blue]`, 256 entries each:
 *   `round(intensity * colour component)`.
 */
export function colourLuts(setting = {}, colour = setting.colour ?? [255, 255, 255]) {
  const t = intensityLut(setting);
  return colour.map((c) => {
    const lut = new Uint8Array(256);
    for (let v = 0; v < 256; v++) lut[v] = Math.round(t[v] * c);
    return lut;
  });
}

/**
 * Composite channels additively into RGBA pixels: each visible channel adds
 * `intensity * colour`, sums clamp at 255; alpha is 255.
 *
 * @param {Uint8Array} channels `C * h * w` uint8 values, channel-major
 *   ((C, h, w) row-major).
 * @param {number} C Number of channels.
 * @param {number} w Width, pixels.
 * @param {number} h Height, pixels.
 * @param {ChannelSetting[]} settings One per channel (missing = defaults).
 * @param {Uint8ClampedArray} out `h * w * 4` RGBA bytes, written in `rect` only.
 * @param {number[]} [rect=[0, 0, h, w]] Dirty rectangle `[y0, x0, y1, x1]`.
 * @param {{grayscaleChannel?: number|null}} [options] `grayscaleChannel`: show
 *   only that channel, in white (its visibility and colour are ignored).
 * @throws {RangeError} When sizes disagree or the rectangle is off the image.
 */
export function compositeChannels(channels, C, w, h, settings, out, rect = [0, 0, h, w], options = {}) {
  if (channels.length !== C * h * w) throw new RangeError(`channels hold ${channels.length} values, expected C*h*w = ${C * h * w}`);
  if (out.length !== h * w * 4) throw new RangeError(`output holds ${out.length} bytes, expected h*w*4 = ${h * w * 4}`);
  checkRect(rect, w, h);
  const gray = options.grayscaleChannel ?? null;
  if (gray !== null && !(Number.isInteger(gray) && gray >= 0 && gray < C)) {
    throw new RangeError(`grayscale channel ${gray} does not exist (the image has ${C} channels)`);
  }
  const active = [];
  for (let c = 0; c < C; c++) {
    const s = settings[c] ?? {};
    if (gray !== null ? c !== gray : s.visible === false) continue;
    active.push({ offset: c * h * w, luts: gray !== null ? colourLuts(s, [255, 255, 255]) : colourLuts(s) });
  }
  if (active.length <= 4 && LITTLE_ENDIAN && out.byteOffset % 4 === 0) {
    compositePacked(channels, w, active, out, rect);
  } else {
    compositeGeneric(channels, w, active, out, rect);
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Fast path for up to 4 channels: each channel's LUT packs r | g << 10 |
 * b << 20 (4 x 255 fits in 10 bits), so a pixel is one add per channel, and
 * the pixel is written as one little-endian uint32.
 */
function compositePacked(channels, w, active, out, rect) {
  const packed = active.map(({ luts: [r, g, b] }) => {
    const lut = new Uint32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = r[v] | (g[v] << 10) | (b[v] << 20);
    return lut;
  });
  const zero = new Uint32Array(256);
  const [l0, l1, l2, l3] = [0, 1, 2, 3].map((k) => packed[k] ?? zero);
  const [o0, o1, o2, o3] = [0, 1, 2, 3].map((k) => (active[k] ? active[k].offset : 0));
  const n = active.length;
  const pixels = new Uint32Array(out.buffer, out.byteOffset, out.length >> 2);
  const [y0, x0, y1, x1] = rect;
  for (let y = y0; y < y1; y++) {
    const end = y * w + x1;
    for (let i = y * w + x0; i < end; i++) {
      let acc = 0;
      if (n > 0) acc = l0[channels[o0 + i]];
      if (n > 1) acc += l1[channels[o1 + i]];
      if (n > 2) acc += l2[channels[o2 + i]];
      if (n > 3) acc += l3[channels[o3 + i]];
      let r = acc & 1023, g = (acc >>> 10) & 1023, b = acc >>> 20;
      if (r > 255) r = 255;
      if (g > 255) g = 255;
      if (b > 255) b = 255;
      pixels[i] = (0xff000000 | (b << 16) | (g << 8) | r) >>> 0;
    }
  }
}

/** Any number of channels: per-component LUT sums, clamped by the output array. */
function compositeGeneric(channels, w, active, out, rect) {
  const [y0, x0, y1, x1] = rect;
  const n = active.length;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = y * w + x;
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < n; k++) {
        const a = active[k];
        const v = channels[a.offset + i];
        r += a.luts[0][v];
        g += a.luts[1][v];
        b += a.luts[2][v];
      }
      const o = i * 4;
      out[o] = r;
      out[o + 1] = g;
      out[o + 2] = b;
      out[o + 3] = 255;
    }
  }
}

/**
 * RGB of a hue at fixed saturation 0.75 and value 1.
 *
 * @param {number} hue Degrees, 0..360.
 * @returns {number[]} `[r, g, b]`, integers 0..255.
 */
export function hueToRgb(hue) {
  const s = 0.75;
  const f = (n) => {
    const k = (n + hue / 60) % 6;
    return Math.round(255 * (1 - s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

const colourCache = new Map();

/**
 * Deterministic display colour of a label id: an integer hash of the id
 * picks the hue, so neighbouring ids get unrelated colours and an id keeps
 * its colour across sessions.
 *
 * @param {number} id Label id (>= 1).
 * @returns {number[]} `[r, g, b]`, integers 0..255.
 */
export function labelColour(id) {
  let rgb = colourCache.get(id);
  if (rgb === undefined) {
    let x = Math.imul(id ^ (id >>> 16), 0x45d9f3b);
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
    x = (x ^ (x >>> 16)) >>> 0;
    rgb = hueToRgb((x / 4294967296) * 360);
    if (colourCache.size > 65536) colourCache.clear();
    colourCache.set(id, rgb);
  }
  return rgb;
}

/**
 * Whether pixel (y, x) of the layer lies on its label's outline: a
 * 4-neighbour inside the image has another id (the image edge is no outline).
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {number} y Row, pixels.
 * @param {number} x Column, pixels.
 * @returns {boolean}
 */
export function isOutline(layer, y, x) {
  const { width, height, data } = layer;
  const i = y * width + x;
  const v = data[i];
  return (y > 0 && data[i - width] !== v) || (y < height - 1 && data[i + width] !== v)
    || (x > 0 && data[i - 1] !== v) || (x < width - 1 && data[i + 1] !== v);
}

/** Least opacity of the selected cell's fill, whatever the fill opacity (fill mode). */
export const SELECTED_FILL_MIN = 0.45;
/** Opacity of the selected cell's fill in outline mode (the others have none). */
export const SELECTED_FILL_OUTLINE_MODE = 0.3;

function packRgb(rgb) {
  return (0xff000000 | (rgb[2] << 16) | (rgb[1] << 8) | rgb[0]) >>> 0;
}

/**
 * Overlay labels on composited pixels, in `rect` only. Call it right after
 * {@link compositeChannels} on the same rect: it blends onto whatever `out`
 * holds.
 *
 * - Fill mode blends every labelled pixel with its label's colour at
 *   `opacity`; with `outlineColour` set, outline pixels are drawn opaque in
 *   that one colour instead.
 * - Outline mode draws only outline pixels, opaque, in `outlineColour`, or
 *   in each label's colour when it is null.
 * - The selected label is highlighted in every mode: its outline opaque in
 *   `selectedColour`, its inside blended at least at {@link SELECTED_FILL_MIN}
 *   (fill mode) or at {@link SELECTED_FILL_OUTLINE_MODE} (outline mode).
 * - `selectedOnly` draws the selected label alone.
 *
 * @param {{width: number, height: number, data: Int32Array}} layer
 * @param {Uint8ClampedArray} out `height * width * 4` RGBA bytes.
 * @param {number[]} [rect] `[y0, x0, y1, x1]`, default the whole layer.
 * @param {object} [options]
 * @param {"fill"|"outline"} [options.mode="fill"]
 * @param {number} [options.opacity=0.4] Fill opacity, 0..1.
 * @param {number|null} [options.selected=null] Highlighted label id.
 * @param {number[]} [options.selectedColour=[255,255,255]] RGB of its outline.
 * @param {number[]|null} [options.outlineColour=null] RGB of every other
 *   label's outline; null: each label's own colour.
 * @param {boolean} [options.selectedOnly=false] Draw only the selected label.
 * @param {Function|Map|null} [options.colours=null] id -> `[r, g, b]`
 *   override (function or Map); ids it does not cover use {@link labelColour}.
 * @throws {RangeError} On a bad mode, opacity, size or rectangle.
 */
export function drawLabels(layer, out, rect = [0, 0, layer.height, layer.width], options = {}) {
  const {
    mode = "fill", opacity = 0.4, selected = null, selectedColour = [255, 255, 255], colours = null,
    outlineColour = null, selectedOnly = false,
  } = options;
  const { width, height, data } = layer;
  if (mode !== "fill" && mode !== "outline") throw new RangeError(`label display mode must be "fill" or "outline", got ${mode}`);
  if (!(opacity >= 0 && opacity <= 1)) throw new RangeError(`label opacity must be within 0..1, got ${opacity}`);
  if (out.length !== width * height * 4) throw new RangeError(`output holds ${out.length} bytes, expected ${width * height * 4}`);
  checkRect(rect, width, height);
  if (selectedOnly && selected === null) return;
  const lookup = colours === null ? null
    : typeof colours === "function" ? colours
      : (id) => colours.get(id);
  const outline = mode === "outline";
  const a = outline ? 256 : Math.round(opacity * 256);
  const aSelected = Math.round((outline ? SELECTED_FILL_OUTLINE_MODE : Math.max(opacity, SELECTED_FILL_MIN)) * 256);
  const selectedPixel = packRgb(selectedColour);
  const outlinePixel = outlineColour ? packRgb(outlineColour) : 0;
  const fast = LITTLE_ENDIAN && out.byteOffset % 4 === 0;
  const pixels = fast ? new Uint32Array(out.buffer, out.byteOffset, out.length >> 2) : null;
  const [y0, x0, y1, x1] = rect;
  let lastId = 0, cr = 0, cg = 0, cb = 0, keep = 256 - a;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = y * width + x;
      const id = data[i];
      if (id === 0 || (selectedOnly && id !== selected)) continue;
      const edge = (y > 0 && data[i - width] !== id) || (y < height - 1 && data[i + width] !== id)
        || (x > 0 && data[i - 1] !== id) || (x < width - 1 && data[i + 1] !== id);
      let solid = 0;
      if (edge && id === selected) solid = selectedPixel;
      else if (edge && outlineColour) solid = outlinePixel;
      else if (outline && !edge && id !== selected) continue;
      if (solid) {
        if (fast) pixels[i] = solid;
        else { out[i * 4] = solid & 255; out[i * 4 + 1] = (solid >>> 8) & 255; out[i * 4 + 2] = (solid >>> 16) & 255; out[i * 4 + 3] = 255; }
        continue;
      }
      if (id !== lastId) {
        const alpha = id === selected ? aSelected : a;
        const rgb = (lookup && lookup(id)) || labelColour(id);
        cr = rgb[0] * alpha; cg = rgb[1] * alpha; cb = rgb[2] * alpha; keep = 256 - alpha; lastId = id;
      }
      if (fast) {
        const p = pixels[i];
        const r = ((p & 255) * keep + cr) >> 8;
        const g = (((p >>> 8) & 255) * keep + cg) >> 8;
        const b = (((p >>> 16) & 255) * keep + cb) >> 8;
        pixels[i] = ((p & 0xff000000) | (b << 16) | (g << 8) | r) >>> 0;
      } else {
        const o = i * 4;
        out[o] = (out[o] * keep + cr) >> 8;
        out[o + 1] = (out[o + 1] * keep + cg) >> 8;
        out[o + 2] = (out[o + 2] * keep + cb) >> 8;
      }
    }
  }
}
