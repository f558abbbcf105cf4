/**
 * Client of the crowd task API. The assignment token lives in this object's
 * memory only: never in the URL, storage or cookies; every call sends it as
 * `Authorization: Bearer <token>`.
 *
 * @module pages/annotate/crowd_api
 */

import { decodeArray, decodeLabels, encodeLabels, labelStackShape } from "../../editor/codec.js";

/** An API answer that is not a success, with the server's message. */
export class ApiError extends Error {
  /**
   * @param {string} message What went wrong, for the user.
   * @param {number} status HTTP status, 0 when the server was not reached.
   */
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }

  /** Whether retrying later may help (no connection, server error, timeout). */
  get transient() { return this.status === 0 || this.status >= 500 || this.status === 429 || this.status === 408; }
}

function shapeHeader(response) {
  const raw = response.headers.get("X-Shape") || "";
  const shape = raw.split(",").map((n) => Number(n));
  if (!raw || shape.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new ApiError(`the server sent an array without a valid X-Shape header (${JSON.stringify(raw)})`, response.status);
  }
  return shape;
}

/** Crowd API client of one project. */
export class CrowdApi {
  /** @param {number} projectId */
  constructor(projectId) {
    this.projectId = projectId;
    this.token = null;
  }

  /**
   * One request; JSON errors become {@link ApiError}.
   *
   * @param {string} path Absolute path on this origin.
   * @param {RequestInit} [init]
   * @returns {Promise<Response>} A successful (2xx) response.
   */
  async request(path, init = {}) {
    const headers = new Headers(init.headers || {});
    if (this.token) headers.set("Authorization", `Bearer ${this.token}`);
    let response;
    try {
      response = await fetch(path, { ...init, headers, credentials: "omit", cache: "no-store" });
    } catch (err) {
      throw new ApiError("Cannot reach the server (offline?). Your work stays in this browser; it will be sent when the connection is back.", 0);
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && body.error) message = body.error;
      } catch { /* not JSON: keep the status line */ }
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
   * Lease a task with the task link's platform parameters; keeps the token.
   *
   * @param {Record<string, string>} params Query parameters of the task link.
   * @returns {Promise<{token: string, preview: boolean, task: object}>}
   */
  async lease(params) {
    this.token = null;
    const answer = await this.json(`/api/crowd/${this.projectId}/lease`, "POST", { params });
    this.token = answer.token;
    return answer;
  }

  /** @param {number} cropId @returns {Promise<object>} The task dict. */
  task(cropId) {
    return this.json(`/api/crowd/crops/${cropId}`);
  }

  /**
   * The crop's channels for display.
   *
   * @param {number} cropId
   * @returns {Promise<{data: Uint8Array, shape: number[], bytes: number}>} uint8 `(C, h, w)`;
   *   `bytes`: compressed size on the wire.
   */
  async channels(cropId) {
    const response = await this.request(`/api/crowd/crops/${cropId}/channels`);
    const shape = shapeHeader(response);
    const raw = await response.arrayBuffer();
    const data = await decodeArray(raw, response.headers.get("X-Dtype") || "uint8", shape);
    return { data, shape, bytes: raw.byteLength };
  }

  /**
   * The task's current labels.
   *
   * @param {number} cropId
   * @returns {Promise<{layers: object[], revision: number, bytes: number}>} int32 layers
   *   (whole_cell, nuclear) and the revision they are.
   */
  async labels(cropId) {
    const response = await this.request(`/api/crowd/crops/${cropId}/labels`);
    const shape = shapeHeader(response);
    const revision = Number(response.headers.get("X-Revision"));
    const raw = await response.arrayBuffer();
    const layers = await decodeLabels(raw, shape, response.headers.get("X-Dtype") || "int32");
    return { layers, revision: Number.isInteger(revision) ? revision : 0, bytes: raw.byteLength };
  }

  /**
   * Save the labels as a new revision on top of `baseRevision`.
   *
   * @param {number} cropId
   * @param {object[]} layers Label layers (encoded synchronously up to the
   *   first await, so later edits do not leak into this revision).
   * @param {number} baseRevision Revision these labels were edited from.
   * @param {number} editCount Edits made so far.
   * @returns {Promise<{revision: number, changed_pixels: number}>}
   */
  async putLabels(cropId, layers, baseRevision, editCount) {
    const shape = labelStackShape(layers);
    const body = await encodeLabels(layers);
    const response = await this.request(`/api/crowd/crops/${cropId}/labels`, {
      method: "PUT",
      body,
      headers: {
        "Content-Type": "application/octet-stream",
        "X-Base-Revision": String(baseRevision),
        "X-Shape": shape.join(","),
        "X-Dtype": "int32",
        "X-Edit-Count": String(editCount),
      },
    });
    return response.json();
  }

  /**
   * Run a server tool.
   *
   * @param {number} cropId
   * @param {string} tool "threshold" | "watershed_split" | "autofit".
   * @param {object} body See the API: feature, bbox, label, labels, ...
   * @returns {Promise<{changed: boolean, bbox?: number[], labels?: string, ms: number}>}
   */
  tool(cropId, tool, body) {
    return this.json(`/api/crowd/crops/${cropId}/tools/${tool}`, "POST", body);
  }

  /**
   * Submit the task.
   *
   * @param {number} cropId
   * @param {{active_seconds: number, edit_count: number}} effort
   * @returns {Promise<{completion: object, assignment_id: number}>}
   */
  submit(cropId, effort) {
    return this.json(`/api/crowd/crops/${cropId}/submit`, "POST", effort);
  }
}
