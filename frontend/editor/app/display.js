/**
 * What the editor shows: per-channel display settings, colour or grayscale
 * mode, and how labels are overlaid. Holds no DOM; `paintRect` turns the
 * state into RGBA pixels with the pure renderers of `render.js`.
 *
 * @module editor/app/display
 */

import { compositeChannels, drawLabels } from "../render.js";

/** Outline colours the panel offers: [#rrggbb or null (each cell's own colour), name]. */
export const OUTLINE_CHOICES = Object.freeze([
  ["#ffd60a", "Yellow"], ["#ffffff", "White"], ["#00e5ff", "Cyan"], ["#ff3df0", "Magenta"], ["#000000", "Black"],
  [null, "Cell colours"],
]);
/** Outline colour of a fresh editor: yellow stands out on blue nuclei and most stains. */
export const DEFAULT_OUTLINE = "#ffd60a";

/**
 * Colour of the selected cell's outline: white, unless the outlines are
 * (nearly) white themselves; then orange-red.
 *
 * @param {string|null} outline The outline colour `#rrggbb`, or null.
 * @returns {number[]} `[r, g, b]`.
 */
export function highlightColour(outline) {
  if (outline === null) return [255, 255, 255];
  const [r, g, b] = hexToRgb(outline);
  return Math.min(r, g, b) > 200 ? [255, 80, 40] : [255, 255, 255];
}

/** Colours used when a channel comes without one (blue, green, red, ...). */
const FALLBACK_COLOURS = ["#0050ff", "#00ff40", "#ff2020", "#ffd000", "#ff00ff", "#00e5ff", "#ff8000"];

/**
 * RGB of a `#rrggbb` colour.
 *
 * @param {string} hex Colour like "#00ff40".
 * @returns {number[]} `[r, g, b]`, integers 0..255.
 * @throws {Error} When the string is not `#rrggbb`.
 */
export function hexToRgb(hex) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || "");
  if (!m) throw new Error(`a colour must look like #rrggbb, got ${JSON.stringify(hex)}`);
  return [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)];
}

/**
 * `#rrggbb` of an RGB triple.
 *
 * @param {number[]} rgb `[r, g, b]`, 0..255.
 * @returns {string}
 */
export function rgbToHex(rgb) {
  return `#${rgb.map((v) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Default display settings of each channel: visible, its project colour,
 * full range, neutral brightness / contrast / gamma.
 *
 * @param {{name: string, color?: string}[]} channels Project channels, in
 *   the order of the image's first axis.
 * @returns {object[]} One `ChannelSetting` (see render.js) per channel, plus
 *   `name`.
 */
export function defaultChannelSettings(channels) {
  return channels.map((ch, i) => ({
    name: ch.name || `channel ${i + 1}`,
    visible: true,
    colour: hexToRgb(ch.color || FALLBACK_COLOURS[i % FALLBACK_COLOURS.length]),
    range: [0, 255],
    brightness: 0,
    contrast: 1,
    gamma: 1,
    invert: false,
  }));
}

/** Display state of one editor. */
export class DisplayState {
  /**
   * @param {{name: string, color?: string}[]} channels Project channels.
   * @param {object} [options]
   * @param {number} [options.feature=0] Label layer shown and edited (0 whole_cell, 1 nuclear).
   */
  constructor(channels, { feature = 0 } = {}) {
    this.channels = defaultChannelSettings(channels);
    /** Channel shown alone in white, or null for the colour composite. */
    this.grayscaleChannel = null;
    this.labels = {
      feature, mode: "fill", opacity: 0.2, visible: true, outline: DEFAULT_OUTLINE, selectedOnly: false,
    };
  }

  /**
   * Change one channel's settings.
   *
   * @param {number} c Channel index.
   * @param {object} patch Fields of `ChannelSetting` to replace (`colour` may be a hex string).
   * @throws {RangeError} On an unknown channel or a bad value.
   */
  setChannel(c, patch) {
    const ch = this.channels[c];
    if (!ch) throw new RangeError(`there is no channel ${c + 1} (the image has ${this.channels.length})`);
    const next = { ...ch, ...patch };
    if (typeof next.colour === "string") next.colour = hexToRgb(next.colour);
    const [lo, hi] = next.range;
    if (!(lo >= 0 && hi <= 255 && lo < hi)) throw new RangeError(`display range must satisfy 0 <= low < high <= 255, got ${lo}..${hi}`);
    if (!(next.gamma > 0)) throw new RangeError(`gamma must be positive, got ${next.gamma}`);
    this.channels[c] = next;
  }

  /**
   * Switch to grayscale showing channel `c`, or back to colour with null.
   *
   * @param {number|null} c Channel index or null.
   */
  setGrayscale(c) {
    if (c !== null && !this.channels[c]) throw new RangeError(`there is no channel ${c + 1}`);
    this.grayscaleChannel = c;
  }

  /**
   * Change the label overlay.
   *
   * @param {{feature?: number, mode?: "fill"|"outline", opacity?: number, visible?: boolean,
   *   outline?: string|null, selectedOnly?: boolean}} patch `opacity`: of the fills;
   *   `outline`: one `#rrggbb` colour for every outline, or null for each cell's own colour;
   *   `selectedOnly`: show the selected cell alone.
   */
  setLabels(patch) {
    const next = { ...this.labels, ...patch };
    if (next.mode !== "fill" && next.mode !== "outline") throw new RangeError(`label mode must be fill or outline, got ${next.mode}`);
    if (!(next.opacity >= 0 && next.opacity <= 1)) throw new RangeError(`label opacity must be within 0..1, got ${next.opacity}`);
    if (next.outline !== null) hexToRgb(next.outline);
    this.labels = { ...next, selectedOnly: Boolean(next.selectedOnly), visible: Boolean(next.visible) };
  }

  /**
   * Paint one rectangle: channels composited additively (or one channel in
   * grayscale), then the shown label layer.
   *
   * @param {Uint8ClampedArray} out `h * w * 4` RGBA bytes.
   * @param {number[]} rect `[y0, x0, y1, x1]`, image pixels.
   * @param {object} scene
   * @param {Uint8Array} scene.channels `C * h * w` uint8, (C, h, w) row-major.
   * @param {number} scene.width Image width, pixels.
   * @param {number} scene.height Image height, pixels.
   * @param {object[]} scene.layers Label layers indexed by feature.
   * @param {number|null} scene.selected Highlighted label id.
   */
  paintRect(out, rect, { channels, width, height, layers, selected }) {
    compositeChannels(channels, this.channels.length, width, height, this.channels, out, rect,
      { grayscaleChannel: this.grayscaleChannel });
    const layer = layers[this.labels.feature];
    if (this.labels.visible && layer) {
      const { mode, opacity, outline, selectedOnly } = this.labels;
      drawLabels(layer, out, rect, {
        mode, opacity, selected, selectedOnly,
        outlineColour: outline === null ? null : hexToRgb(outline),
        selectedColour: highlightColour(outline),
      });
    }
  }
}
