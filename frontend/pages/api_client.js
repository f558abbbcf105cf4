/**
 * What the crowd and review API clients share: one checked `fetch`, JSON
 * calls, and the binary array format (deflate-compressed raw bytes with
 * `X-Shape` / `X-Dtype` / `X-Revision` headers).
 *
 * @module pages/api_client
 */

import { decodeArray, decodeLabels, encodeLabels, labelStackShape } from "../editor/codec.js";

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

/**
 * The array shape an answer announces.
 *
 * @param {Response} response
 * @returns {number[]}
 * @throws {ApiError} When `X-Shape` is missing or not a list of non-negative integers.
 */
export function shapeOf(response) {
  const raw = response.headers.get("X-Shape") || "";
  const shape = raw.split(",").map((n) => Number(n));
  if (!raw || shape.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new ApiError(`the server sent an array without a valid X-Shape header (${JSON.stringify(raw)}); reload the page`,
      response.status);
  }
  return shape;
}

/**
 * One request; a failure becomes {@link ApiError} with the server's message.
 *
 * @param {string} path Absolute path on this origin.
 * @param {RequestInit} init Including `headers` (a `Headers`) and `credentials`.
 * @param {{offline: string, status?: (status: number, message: string) => string}} messages
 *   What to say when the server cannot be reached; `status` may reword a failure's message.
 * @returns {Promise<Response>} A successful (2xx) response.
 */
export async function checkedFetch(path, init, messages) {
  let response;
  try {
    response = await fetch(path, { ...init, cache: "no-store" });
  } catch {
    throw new ApiError(messages.offline, 0);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch { /* not JSON: keep the status line */ }
    throw new ApiError(messages.status ? messages.status(response.status, message) : message, response.status);
  }
  return response;
}

/** `RequestInit` of a JSON call (no body for `undefined`). */
export function jsonInit(method, body) {
  const init = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  return init;
}

/**
 * A uint8 array answer (channels, overlays).
 *
 * @param {Response} response
 * @returns {Promise<{data: Uint8Array, shape: number[], bytes: number}>} `bytes`: compressed size on the wire.
 */
export async function readArray(response) {
  const shape = shapeOf(response);
  const raw = await response.arrayBuffer();
  const data = await decodeArray(raw, response.headers.get("X-Dtype") || "uint8", shape);
  return { data, shape, bytes: raw.byteLength };
}

/**
 * A label-stack answer.
 *
 * @param {Response} response
 * @returns {Promise<{layers: object[], revision: number, bytes: number}>} int32 layers
 *   (whole_cell, nuclear) and the revision they are.
 */
export async function readLabels(response) {
  const shape = shapeOf(response);
  const revision = Number(response.headers.get("X-Revision"));
  const raw = await response.arrayBuffer();
  const layers = await decodeLabels(raw, shape, response.headers.get("X-Dtype") || "int32");
  return { layers, revision: Number.isInteger(revision) ? revision : 0, bytes: raw.byteLength };
}

/**
 * `RequestInit` of a labels save on top of `baseRevision`.
 *
 * @param {object[]} layers Label layers (encoded synchronously up to the first
 *   await, so later edits do not leak into this revision).
 * @param {number} baseRevision Revision these labels were edited from.
 * @param {Record<string, string>} [extraHeaders]
 * @returns {Promise<RequestInit>}
 */
export async function labelsPutInit(layers, baseRevision, extraHeaders = {}) {
  const shape = labelStackShape(layers);
  const body = await encodeLabels(layers);
  return {
    method: "PUT",
    body,
    headers: {
      "Content-Type": "application/octet-stream",
      "X-Base-Revision": String(baseRevision),
      "X-Shape": shape.join(","),
      "X-Dtype": "int32",
      ...extraHeaders,
    },
  };
}
