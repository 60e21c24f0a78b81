// Library: every ready recording, newest first, with posters, durations and dates; search filters by title.

import { api } from './api.js';
import { matches, videoCard } from './cards.js';
import { renderShell } from './shell.js';

const search = renderShell('library');
const grid = document.getElementById('library-grid');
const status = document.getElementById('library-status');
const more = document.getElementById('more');
let items = [];
let cursor = null;

function render() {
  const q = search.value.trim();
  const shown = items.filter((item) => matches(item, q));
  grid.replaceChildren(...shown.map(videoCard));
  grid.setAttribute('aria-busy', 'false');
  document.getElementById('library-empty').hidden = items.length > 0;
  status.textContent = q ? `${shown.length} of ${items.length} videos match “${q}”` : (items.length ? `${items.length} ${items.length === 1 ? 'video' : 'videos'}` : '');
  more.hidden = !cursor;
}

async function load() {
  const query = new URLSearchParams({ limit: '48' });
  if (cursor) query.set('cursor', cursor);
  more.disabled = true;
  try {
    const page = await api(`/api/recordings?${query}`);
    items = items.concat(page.items);
    cursor = page.nextCursor;
  } catch (error) {
    status.textContent = `Could not load the library: ${error.message}`;
  } finally {
    more.disabled = false;
  }
  render();
}

search.addEventListener('input', render);
search.form.addEventListener('submit', (event) => { event.preventDefault(); render(); });
more.addEventListener('click', load);
load();
