// Keeps the images page's status pills and crop progress bars current (every 5 s while visible).
import { getJSON } from './http.js';

const grid = document.querySelector('[data-role="image-grid"]');
const PERIOD_MS = 5000;

if (grid && grid.dataset.progressUrl) {
  setInterval(() => { if (!document.hidden) refresh(grid).catch(() => {}); }, PERIOD_MS);
}

async function refresh(root) {
  const { images } = await getJSON(root.dataset.progressUrl);
  for (const image of images) {
    const card = root.querySelector(`[data-image-id="${image.id}"]`);
    if (!card) continue;
    const pill = card.querySelector('[data-role="status"]');
    if (pill) {
      pill.textContent = image.status_text;
      pill.className = `pill status-${image.status}`;
    }
    if (image.crops) {
      let bar = card.querySelector('[data-role="crops"]');
      if (!bar) {
        bar = document.createElement('progress');
        bar.dataset.role = 'crops';
        card.querySelector('.meta').append(bar);
      }
      bar.max = image.crops.crops;
      bar.value = image.crops.fused;
      bar.title = `${image.crops.fused} of ${image.crops.crops} crops fused`;
      bar.classList.toggle('done', image.crops.fused === image.crops.crops);
    }
  }
}
