/**
 * Script of the example host page (`/annotate/example-host`): embeds the
 * crowd task in an iframe as a crowdsourcing platform would, lets the visitor
 * pick a worker id, and shows the completion message the task posts.
 *
 * @module pages/annotate/example_host
 */

import { COMPLETION_MESSAGE } from "./completion.js";

const host = document.getElementById("host");
const projectId = host && host.dataset.projectId;
const frame = host && host.querySelector('[data-role="frame"]');
const log = host && host.querySelector('[data-role="log"]');
const form = host && host.querySelector('[data-role="controls"]');
const link = host && host.querySelector('[data-role="link"]');
let received = 0;

if (frame) {
  window.addEventListener("message", (event) => {
    if (event.source !== frame.contentWindow) return;
    const data = event.data;
    if (!data || data.type !== COMPLETION_MESSAGE) return;
    received += 1;
    const line = `${new Date().toLocaleTimeString()}  from ${event.origin}: completion code ${data.code} (assignment ${data.assignment_id})`;
    log.textContent = received === 1 ? line : `${log.textContent}\n${line}`;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const worker = new FormData(form).get("worker");
    const src = `/annotate/${projectId}?${new URLSearchParams({ worker })}`;
    link.textContent = src;
    frame.src = src;
  });
}
