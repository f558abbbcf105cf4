// Image upload with one request per file: each file gets its own progress bar and, when the
// server refuses it, the server's message next to it (nothing of a refused file is stored).
import { csrfToken, el, errorMessage } from './http.js';

const section = document.querySelector('#upload');
if (section) setUp(section);

function setUp(root) {
  const form = root.querySelector('[data-role="upload-form"]');
  const input = root.querySelector('[data-role="files"]');
  const list = root.querySelector('[data-role="upload-list"]');
  const mapInput = root.querySelector('[data-role="channel-map"]');
  const url = root.dataset.uploadUrl;
  const projectId = root.dataset.projectId;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const files = Array.from(input.files || []);
    if (!files.length) return;
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    const rows = files.map((file) => addRow(list, file));
    for (let i = 0; i < files.length; i += 1) {
      // one at a time: the bars fill in order and the server decodes one file at once
      await uploadOne(url, files[i], mapInput ? mapInput.value.trim() : '', rows[i], projectId);
    }
    button.disabled = false;
    input.value = '';
  });
}

function addRow(list, file) {
  const bar = el('progress', { max: 1, value: 0, 'aria-label': `Upload of ${file.name}` });
  const msg = el('span', { class: 'msg muted', text: `${formatBytes(file.size)} · waiting` });
  const row = el('li', {}, el('span', { class: 'file', title: file.name, text: file.name }), bar, msg);
  list.append(row);
  return { row, bar, msg };
}

function uploadOne(url, file, channelMap, ui, projectId) {
  return new Promise((resolve) => {
    const body = new FormData();
    body.append('files', file, file.name);
    if (channelMap) body.append('channels', channelMap);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('X-CSRF-Token', csrfToken());
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      ui.bar.value = event.loaded / event.total;
      ui.msg.textContent = event.loaded < event.total
        ? `${formatBytes(event.loaded)} of ${formatBytes(event.total)}` : 'checking the file…';
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        const images = JSON.parse(xhr.responseText).images || [];
        ui.bar.value = 1;
        ui.bar.classList.add('done');
        ui.msg.className = 'msg ok';
        ui.msg.textContent = images.length
          ? `imported: ${images.map((i) => `${i.name} (${i.width}×${i.height}, ${i.n_channels} ch)`).join(', ')}`
          : 'imported';
        for (const image of images) addCard(image, projectId);
      } else {
        fail(ui, errorMessage(xhr.status, xhr.responseText));
      }
      resolve();
    };
    xhr.onerror = () => { fail(ui, errorMessage(0, '')); resolve(); };
    xhr.send(body);
  });
}

function fail(ui, message) {
  ui.bar.classList.add('failed');
  ui.bar.value = 1;
  ui.msg.className = 'msg error';
  ui.msg.setAttribute('role', 'alert');
  ui.msg.textContent = `refused: ${message}`;
}

function addCard(image, projectId) {
  const grid = document.querySelector('[data-role="image-grid"]');
  const empty = document.querySelector('[data-role="image-grid-empty"]');
  if (empty) empty.remove();
  if (!grid) return;
  const card = el('article', { class: 'image-card', 'data-image-id': image.id },
    el('img', { src: `/api/projects/${projectId}/images/${image.id}/thumbnail.png?size=256`,
                alt: `Channel composite of ${image.name}`, width: 256, height: 256 }),
    el('div', { class: 'meta' },
      el('div', { class: 'name', title: image.name, text: image.name }),
      el('div', { class: 'muted small', text: `${image.width} × ${image.height} px · ${image.n_channels} ch · ${image.dtype}` }),
      el('div', {}, el('span', { class: `pill status-${image.status}`, 'data-role': 'status', text: image.status.replace(/_/g, ' ') }))));
  grid.prepend(card);
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(0)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}
