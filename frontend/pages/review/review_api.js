/**
 * Client of the review API (`/api/review/...`) for one stitched image. The
 * reviewer is logged in with the session cookie; state changes carry the
 * session's CSRF token (`X-CSRF-Token`, from `GET /api/me`). Arrays travel
 * as deflate-compressed raw bytes with `X-Shape` / `X-Dtype` headers.
 *
 * @module pages/review/review_api
 */

import { ApiError, checkedFetch, jsonInit, labelsPutInit, readArray, readLabels } from "../api_client.js";

export { ApiError };

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const MESSAGES = {
  offline: "Cannot reach the server (offline?). Your edits stay in this tab; saving resumes when the connection is back.",
  status: (status, message) => (status === 401 ? `Your session has ended (${message}); log in again in another tab, then save.` : message),
};

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
    return checkedFetch(path, { ...init, method, headers, credentials: "same-origin" }, MESSAGES);
  }

  async json(path, method = "GET", body = undefined) {
    return (await this.request(path, jsonInit(method, body))).json();
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

  /**
   * The image's channels for display.
   *
   * @returns {Promise<{data: Uint8Array, shape: number[], bytes: number}>} uint8 `(C, H, W)`;
   *   `bytes`: compressed size on the wire.
   */
  async channels() {
    return readArray(await this.request(`${this.base}/channels`));
  }

  /**
   * The newest reviewed labels (or the stitch itself).
   *
   * @returns {Promise<{layers: object[], revision: number, bytes: number}>} int32 layers
   *   (whole_cell, nuclear) and their revision.
   */
  async labels() {
    return readLabels(await this.request(`${this.base}/labels`));
  }

  /**
   * A mask overlay.
   *
   * @param {"conflicts"|"changed"} name
   * @returns {Promise<{data: Uint8Array, shape: number[]}>} uint8 `(P, H, W)`.
   */
  async overlay(name) {
    const { data, shape } = await readArray(await this.request(`${this.base}/overlays/${name}`));
    return { data, shape };
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
    return (await this.request(`${this.base}/labels`, await labelsPutInit(layers, baseRevision))).json();
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
