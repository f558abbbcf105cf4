// Live job progress on the rounds page: polls the project's jobs every 2 s and redraws the
// summary and the active/recent tables. Without JavaScript the page shows the state at load.
import { el, pollJSON } from './http.js';

const root = document.querySelector('[data-role="jobs"]');
const PERIOD_MS = 2000;
const TARGETS = ['image_id', 'crop_id', 'round_id', 'dataset_id', 'model_version_id'];

if (root && root.dataset.jobsUrl) {
  pollJSON(root.dataset.jobsUrl, PERIOD_MS, render, (error) => note(`Could not refresh: ${error.message}`));
}

function bar(value, status) {
  const cls = status === 'finished' ? 'done' : status === 'failed' ? 'failed' : '';
  return el('progress', { max: 1, value, class: cls || null, text: `${Math.round(value * 100)} %` });
}

function jobRow(job) {
  const on = TARGETS.filter((k) => k in job.args).map((k) => `${k.replace('_id', '')} ${job.args[k]}`).join(', ');
  const message = el('td', { class: 'small', text: job.message });
  if (job.error) message.append(el('div', { class: 'bad', text: job.error }));
  return el('tr', { 'data-job-id': job.id },
    el('td', { class: 'num', text: job.id }),
    el('td', { text: job.kind }),
    el('td', { class: 'small muted', text: on }),
    el('td', {}, el('span', { class: `pill status-${job.status}`, text: job.status })),
    el('td', { class: 'progress-cell' }, bar(job.progress, job.status)),
    message);
}

function summaryRow(kind) {
  return el('tr', {},
    el('td', { text: kind.kind }),
    el('td', { class: 'num', text: `${kind.finished} / ${kind.total}` }),
    el('td', { class: kind.failed ? 'num bad' : 'num', text: kind.failed }),
    el('td', { class: 'progress-cell' }, bar(kind.progress, kind.finished === kind.total ? 'finished' : '')));
}

function fill(selector, rows, emptyText, columns) {
  const body = root.querySelector(selector);
  if (!body) return;
  body.replaceChildren(...(rows.length ? rows
    : [el('tr', {}, el('td', { colspan: columns, class: 'muted', text: emptyText }))]));
}

function render(data) {
  fill('[data-role="job-summary"]', data.summary.map(summaryRow), 'No jobs yet.', 4);
  fill('[data-role="job-active"]', data.active.map(jobRow), 'Nothing running or queued.', 6);
  fill('[data-role="job-recent"]', data.recent.map(jobRow), 'None yet.', 6);
  note(`Updated ${new Date().toLocaleTimeString()}; refreshes every 2 s.`);
}

function note(text) {
  const line = root.querySelector('[data-role="job-updated"]');
  if (line) line.textContent = text;
}
