/**
 * Client of the review API (`/api/review/...`) for one stitched image. The
 * reviewer is logged in with the session cookie; state changes carry the
 * session's CSRF token (`X-CSRF-Token`, from `GET /api/me`). Arrays travel
 * as deflate-compressed raw bytes with `X-Shape` / `X-Dtype` headers.
 *
 * @module pages/review/review_api
 */

import { decodeArray, decodeLabels, encodeLabels, labelStackShape } from "../../editor/codec.js";
import { ApiError } from "../annotate/crowd_api.js";

export { ApiError };

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * The array shape an answer announces.
 *
 * @param {string|null} header `X-Shape` value, e.g. "2,512,512".
 * @returns {number[]}
 * @throws {Error} When it is missing or not a list of non-negative integers.
 */
export function parseShape(header) {
  const raw = header || "";
  const shape = raw.split(",").map((n) => Number(n));
  if (!raw || shape.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new Error(`the server sent an array without a valid X-Shape header (${JSON.stringify(raw)}); reload the page`);
  }
  return shape;
}

/** Review API client of one stitched image. */
export class ReviewApi {
  /** @param {number} stitchId */
  constructor(stitchId) {
    this.stitchId = stitchId;
    this.csrf = null;
    this.base = `/api/review/stitches/${stitchId}`;
  }

  /**
   * One request; JSON errors become {@link ApiError} with the server's message.
   *
   * @param {string} path Absolute path on this origin.
   * @param {RequestInit} [init]
   * @returns {Promise<Response>} A successful (2xx) response.
   */
  async request(path, init = {}) {
    const method = (init.method || "GET").toUpperCase();
    const headers = new Headers(init.headers || {});
    if (UNSAFE.has(method) && this.csrf) headers.set("X-CSRF-Token", this.csrf);
    let response;
    try {
      response = await fetch(path, { ...init, method, headers, credentials: "same-origin", cache: "no-store" });
    } catch {
      throw new ApiError("Cannot reach the server (offline?). Your edits stay in this tab; saving resumes when the connection is back.", 0);
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && body.error) message = body.error;
      } catch { /* not JSON: keep the status line */ }
      if (response.status === 401) message = `Your session has ended (${message}); log in again in another tab, then save.`;
      throw new ApiError(message, response.status);
    }
    return response;
  }

  async json(path, method = "GET", body = undefined) {
    const init = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { "Content-Type": "application/json" };
    }
    return (await this.request(path, init)).json();
  }

  /**
   * Who is logged in; keeps the CSRF token for later writes.
   *
   * @returns {Promise<{id: number, username: string, role: string, csrf_token: string}>}
   */
  async me() {
    const me = await this.json("/api/me");
    this.csrf = me.csrf_token;
    return me;
  }

  /** @returns {Promise<object>} The stitch: shape, channels, revision, counts, crops. */
  info() {
    return this.json(this.base);
  }

  async array(path) {
    const response = await this.request(path);
    const shape = parseShape(response.headers.get("X-Shape"));
    const raw = await response.arrayBuffer();
    return { response, shape, raw };
  }

  /**
   * The image's channels for display.
   *
   * @returns {Promise<{data: Uint8Array, shape: number[], bytes: number}>} uint8 `(C, H, W)`;
   *   `bytes`: compressed size on the wire.
   */
  async channels() {
    const { response, shape, raw } = await this.array(`${this.base}/channels`);
    const data = await decodeArray(raw, response.headers.get("X-Dtype") || "uint8", shape);
    return { data, shape, bytes: raw.byteLength };
  }

  /**
   * The newest reviewed labels (or the stitch itself).
   *
   * @returns {Promise<{layers: object[], revision: number, bytes: number}>} int32 layers
   *   (whole_cell, nuclear) and their revision.
   */
  async labels() {
    const { response, shape, raw } = await this.array(`${this.base}/labels`);
    const revision = Number(response.headers.get("X-Revision"));
    const layers = await decodeLabels(raw, shape, response.headers.get("X-Dtype") || "int32");
    return { layers, revision: Number.isInteger(revision) ? revision : 0, bytes: raw.byteLength };
  }

  /**
   * A mask overlay.
   *
   * @param {"conflicts"|"changed"} name
   * @returns {Promise<{data: Uint8Array, shape: number[]}>} uint8 `(P, H, W)`.
   */
  async overlay(name) {
    const { response, shape, raw } = await this.array(`${this.base}/overlays/${name}`);
    return { data: await decodeArray(raw, response.headers.get("X-Dtype") || "uint8", shape), shape };
  }

  /**
   * Save the labels as a new review revision on top of `baseRevision`; a
   * stale base (another reviewer saved first) answers 409.
   *
   * @param {object[]} layers Label layers (encoded synchronously up to the
   *   first await, so later edits do not leak into this revision).
   * @param {number} baseRevision
   * @returns {Promise<{revision: number, changed_pixels: number}>}
   */
  async putLabels(layers, baseRevision) {
    const shape = labelStackShape(layers);
    const body = await encodeLabels(layers);
    const response = await this.request(`${this.base}/labels`, {
      method: "PUT",
      body,
      headers: {
        "Content-Type": "application/octet-stream",
        "X-Base-Revision": String(baseRevision),
        "X-Shape": shape.join(","),
        "X-Dtype": "int32",
      },
    });
    return response.json();
  }

  /**
   * Run a server tool on a box (same body as the crowd tool API).
   *
   * @param {"threshold"|"watershed_split"|"autofit"} tool
   * @param {object} body
   * @returns {Promise<{changed: boolean, bbox?: number[], labels?: string}>}
   */
  tool(tool, body) {
    return this.json(`${this.base}/tools/${tool}`, "POST", body);
  }

  /**
   * Accept revision `revision` as ground truth.
   *
   * @param {number} revision The revision the reviewer looked at.
   * @returns {Promise<{review_id: number, decision: string}>}
   */
  approve(revision) {
    return this.json(`${this.base}/approve`, "POST", { revision });
  }

  /**
   * Send crops back to the crowd.
   *
   * @param {string} reason Shown to the next annotators.
   * @param {number[]} cropIds Crop ids (not indices).
   * @returns {Promise<{review_id: number, decision: string, crop_ids: number[]}>}
   */
  reject(reason, cropIds) {
    return this.json(`${this.base}/reject`, "POST", { reason, crop_ids: cropIds });
  }

  /**
   * Images waiting for review, oldest first.
   *
   * @param {number|null} [projectId]
   * @returns {Promise<object[]>}
   */
  async queue(projectId = null) {
    const query = projectId === null ? "" : `?project_id=${encodeURIComponent(projectId)}`;
    return (await this.json(`/api/review/queue${query}`)).queue;
  }
}
