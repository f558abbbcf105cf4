/**
 * The editor's image buffer: RGBA pixels in JS (what the renderers write)
 * mirrored into off-screen canvas tiles (what the screen draws).
 *
 * Why tiles (256 px): writing a canvas that was drawn from copies its whole
 * bitmap (copy-on-write), so one 2048² canvas costs a 16 MB copy per edit; a
 * tile costs 256 KB at most (bench/editor.py: a 2048² brush stroke went from
 * 24 ms with one canvas, to 8.6 ms with 512 px tiles, to 2.5 ms with 256 px).
 *
 * Rectangles are `[y0, x0, y1, x1]` in image pixels, half-open.
 *
 * @module editor/app/tiles
 */

/** Tile side, image pixels. */
export const TILE = 256;

/** RGBA pixels of one image and the canvas tiles that show them. */
export class TiledImage {
  /**
   * @param {number} width Image width, pixels.
   * @param {number} height Image height, pixels.
   */
  constructor(width, height) {
    this.width = width;
    this.height = height;
    /** `height * width * 4` RGBA bytes, row-major: the renderers' output. */
    this.pixels = new Uint8ClampedArray(width * height * 4);
    this.tiles = [];
    for (let y = 0; y < height; y += TILE) {
      for (let x = 0; x < width; x += TILE) {
        const canvas = document.createElement("canvas");
        canvas.width = Math.min(TILE, width - x);
        canvas.height = Math.min(TILE, height - y);
        this.tiles.push({ x, y, w: canvas.width, h: canvas.height, canvas, ctx: canvas.getContext("2d") });
      }
    }
  }

  /**
   * Copy a rectangle of the pixels into the tiles it touches, as small
   * ImageData patches (`putImageData` of a whole-image ImageData with a dirty
   * rectangle still converts all of it).
   *
   * @param {number[]} rect `[y0, x0, y1, x1]`.
   */
  upload([y0, x0, y1, x1]) {
    for (const tile of this.tiles) {
      const ty0 = Math.max(y0, tile.y), tx0 = Math.max(x0, tile.x);
      const ty1 = Math.min(y1, tile.y + tile.h), tx1 = Math.min(x1, tile.x + tile.w);
      if (ty0 >= ty1 || tx0 >= tx1) continue;
      const dw = tx1 - tx0, dh = ty1 - ty0, rowBytes = dw * 4;
      const patch = new ImageData(dw, dh);
      for (let r = 0; r < dh; r++) {
        const from = ((ty0 + r) * this.width + tx0) * 4;
        patch.data.set(this.pixels.subarray(from, from + rowBytes), r * rowBytes);
      }
      tile.ctx.putImageData(patch, tx0 - tile.x, ty0 - tile.y);
    }
  }

  /**
   * Draw the tiles through a viewport: every visible one, or only what covers
   * an image rectangle (clipped to its screen area). Tile edges are snapped to
   * whole device pixels, so tiles meet without seams and a partial redraw
   * gives exactly the pixels a full one would.
   *
   * @param {CanvasRenderingContext2D} ctx Screen canvas, device pixels.
   * @param {{scale: number, offsetX: number, offsetY: number}} viewport CSS pixels.
   * @param {number} dpr Device pixels per CSS pixel.
   * @param {number[]|null} visible Image rectangle in view (null: none).
   * @param {number[]|null} [part] Image rectangle to redraw; null: everything.
   */
  draw(ctx, { scale, offsetX, offsetY }, dpr, visible, part = null) {
    const devX = (x) => Math.round((x * scale + offsetX) * dpr);
    const devY = (y) => Math.round((y * scale + offsetY) * dpr);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.save();
    let area = visible;
    if (part) {
      area = visible && [Math.max(visible[0], part[0]), Math.max(visible[1], part[1]),
        Math.min(visible[2], part[2]), Math.min(visible[3], part[3])];
      if (!area || area[0] >= area[2] || area[1] >= area[3]) { ctx.restore(); return; }
      const cx0 = devX(area[1]) - 1, cy0 = devY(area[0]) - 1;
      const cw = devX(area[3]) + 1 - cx0, ch = devY(area[2]) + 1 - cy0;
      ctx.beginPath();
      ctx.rect(cx0, cy0, cw, ch);
      ctx.clip();
      ctx.clearRect(cx0, cy0, cw, ch);
    } else {
      ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    }
    if (area) {
      ctx.imageSmoothingEnabled = scale < 1;
      for (const t of this.tiles) {
        if (t.y >= area[2] || t.y + t.h <= area[0] || t.x >= area[3] || t.x + t.w <= area[1]) continue;
        const left = devX(t.x), top = devY(t.y);
        ctx.drawImage(t.canvas, left, top, devX(t.x + t.w) - left, devY(t.y + t.h) - top);
      }
    }
    ctx.restore();
  }
}
