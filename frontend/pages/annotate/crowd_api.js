/**
 * Client of the crowd task API. The assignment token lives in this object's
 * memory only: never in the URL, storage or cookies; every call sends it as
 * `Authorization: Bearer <token>`.
 *
 * @module pages/annotate/crowd_api
 */

import { ApiError, checkedFetch, jsonInit, labelsPutInit, readArray, readLabels } from "../api_client.js";

export { ApiError };

const OFFLINE = "Cannot reach the server (offline?). Your work stays in this browser; it will be sent when the connection is back.";

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
    return checkedFetch(path, { ...init, headers, credentials: "omit" }, { offline: OFFLINE });
  }

  async json(path, method = "GET", body = undefined) {
    return (await this.request(path, jsonInit(method, body))).json();
  }

  /**
   * Lease a task with the task link's platform parameters; keeps the token.
   *
   * @param {Record<string, string>} params Query parameters of the task link.
   * @param {string|null} [resume] The resume secret of this tab's last lease:
   *   with it, a reload gets the same task back.
   * @returns {Promise<{token: string, preview: boolean, resume: string|null, task: object}>}
   */
  async lease(params, resume = null) {
    this.token = null;
    const answer = await this.json(`/api/crowd/${this.projectId}/lease`, "POST", { params, resume });
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
    return readArray(await this.request(`/api/crowd/crops/${cropId}/channels`));
  }

  /**
   * The task's current labels.
   *
   * @param {number} cropId
   * @returns {Promise<{layers: object[], revision: number, bytes: number}>} int32 layers
   *   (whole_cell, nuclear) and the revision they are.
   */
  async labels(cropId) {
    return readLabels(await this.request(`/api/crowd/crops/${cropId}/labels`));
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
    const init = await labelsPutInit(layers, baseRevision, { "X-Edit-Count": String(editCount) });
    return (await this.request(`/api/crowd/crops/${cropId}/labels`, init)).json();
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
