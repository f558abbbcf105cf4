// The rounds table of the rounds page, live: polls the project's rounds every 2 s and redraws
// their rows (crops fused, crowd crops, submissions, stitches) and the start button, as jobs.js
// does the jobs beside it. The markup is the one templates/admin/rounds.html renders.
import { el, pollJSON } from './http.js';

const body = document.querySelector('[data-role="rounds"]');
const PERIOD_MS = 2000;

if (body && body.dataset.roundsUrl) {
  // A failed refresh keeps the rows as they are; the jobs panel beside them says it could not refresh.
  pollJSON(body.dataset.roundsUrl, PERIOD_MS, (data) => render(data.rounds), () => {});
}

function muted(text) {
  return el('span', { class: 'small muted', text });
}

function fusedCell(r) {
  const done = r.crops && r.crops_fused === r.crops;
  const gold = r.gold_crops ? ` (+${r.gold_crops} gold)` : '';
  return el('td', { class: 'progress-cell', 'data-role': 'crops-fused' },
    el('progress', { max: r.crops || 1, value: r.crops_fused, class: done ? 'done' : null,
      text: `${r.crops_fused}/${r.crops}` }),
    ' ', muted(`${r.crops_fused} / ${r.crops}${gold}`));
}

function crowdCell(r) {
  const cell = el('td', { class: 'num', 'data-role': 'crowd-crops' }, String(r.crowd_crops));
  if (r.held_crops) cell.append(' ', muted(`(+${r.held_crops} waiting)`));
  cell.append(' ', muted(`/ ${r.crowd_crops_cumulative} total`));
  return cell;
}

function stitchesCell(r) {
  const pills = Object.entries(r.stitches).flatMap(([status, n]) => [
    el('span', { class: `pill status-${status}`, text: `${n} ${status.replace('_', ' ')}` }), ' ']);
  return el('td', { 'data-role': 'stitches' }, ...(pills.length ? pills : [el('span', { class: 'muted', text: '—' })]));
}

function roundRow(r) {
  return el('tr', { 'data-round-id': r.id },
    el('td', {}, el('strong', { text: r.number })),
    el('td', {}, el('span', { class: `pill status-${r.status}`, text: r.status })),
    el('td', { text: r.model_version ? `v${r.model_version}` : (r.predictor || '—') }),
    el('td', { class: 'small', 'data-role': 'round-policy', text: r.policy_text }),
    el('td', { class: 'num', text: r.images }),
    fusedCell(r),
    crowdCell(r),
    el('td', { class: 'num', 'data-role': 'model-crops', text: r.model_crops }),
    el('td', { class: 'num', 'data-role': 'submissions', text: r.submissions }),
    stitchesCell(r),
    el('td', { class: 'small muted', text: `${r.created_at.slice(0, 16).replace('T', ' ')} UTC` }));
}

function render(rounds) {
  if (!rounds.length) return; // the page shows the table only once a round exists
  body.replaceChildren(...rounds.map(roundRow));
  const open = rounds.find((r) => r.status === 'open');
  const start = document.querySelector('[data-role="start-round"]');
  if (start) {
    start.disabled = Boolean(open);
    start.textContent = `Start round ${rounds[0].number + 1}`;
  }
  const note = document.querySelector('[data-role="round-open-note"]');
  if (note) {
    note.hidden = !open;
    note.textContent = open
      ? `Round ${open.number} is open; it closes by itself when all its images are approved.` : '';
  }
}
