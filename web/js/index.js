// Home: the live grid (REST first for a fast first paint, then kept current over the WebSocket) and recent VODs.

import { api } from './api.js';
import { matches, refreshTimes, streamCard, updateStreamCard, videoCard } from './cards.js';
import { config } from './config.js';
import { copyText, replace } from './dom.js';
import { renderShell } from './shell.js';
import { LiveSocket } from './ws-client.js';

const search = renderShell(location.hash === '#live' ? 'live' : 'home');
const liveGrid = document.getElementById('live-grid');
const liveEmpty = document.getElementById('live-empty');
const vodGrid = document.getElementById('vod-grid');
const status = document.getElementById('live-status');
const cards = new Map(); // stream id → card element
let recordings = [];

function fromSummary(summary) {
  return {
    id: summary.streamId, title: summary.title, status: summary.status, thumbnailUrl: summary.thumbnailUrl,
    viewerCount: summary.viewerCount, startedAt: summary.startedAt,
  };
}

function query() {
  return search.value.trim();
}

function render() {
  const q = query();
  let shown = 0;
  for (const card of cards.values()) {
    card.hidden = !matches(card.stream, q);
    if (!card.hidden) shown += 1;
  }
  liveGrid.setAttribute('aria-busy', 'false');
  liveEmpty.hidden = cards.size > 0;
  status.textContent = q && cards.size ? `${shown} of ${cards.size} live streams match “${q}”` : '';
  const videos = recordings.filter((r) => matches(r, q)).slice(0, q ? 48 : 12);
  replace(vodGrid, videos.map(videoCard));
  document.getElementById('vod-empty').hidden = videos.length > 0;
}

function upsert(stream) {
  if (stream.status === 'ended') return remove(stream.id);
  const card = cards.get(stream.id);
  if (card) {
    updateStreamCard(card, stream);
    return;
  }
  const created = streamCard(stream);
  cards.set(stream.id, created);
  liveGrid.prepend(created);
  render();
}

function remove(id) {
  const card = cards.get(id);
  if (!card) return;
  card.remove();
  cards.delete(id);
  render();
}

async function loadStreams() {
  const pages = await Promise.all(['live', 'reconnecting'].map((s) => api(`/api/streams?status=${s}`)));
  for (const stream of pages.flatMap((page) => page.items).reverse()) upsert(stream);
  render();
}

async function loadRecordings() {
  const page = await api('/api/recordings?limit=48');
  recordings = page.items;
  render();
}

function connect() {
  const socket = new LiveSocket({ lobby: true });
  socket
    .on('streamList', ({ streams }) => {
      const ids = new Set(streams.map((s) => s.streamId));
      for (const id of [...cards.keys()]) if (!ids.has(id)) remove(id);
      for (const summary of streams) upsert(fromSummary(summary));
      render();
    })
    .on('streamLive', ({ stream }) => upsert(fromSummary(stream)))
    .on('streamEnded', ({ streamId }) => {
      remove(streamId);
      loadRecordings().catch(() => {});
    })
    .on('viewerCount', ({ streamId, count }) => {
      const card = cards.get(streamId);
      if (card) updateStreamCard(card, { viewerCount: count });
    })
    .on('thumbnail', ({ streamId, url }) => {
      const card = cards.get(streamId);
      if (card) updateStreamCard(card, { thumbnailUrl: url });
    });
  socket.connect();
}

async function main() {
  const { rtmpUrl } = await config();
  document.getElementById('rtmp-url').textContent = rtmpUrl;
  for (const button of document.querySelectorAll('[data-copy]')) {
    button.addEventListener('click', () => copyText(document.getElementById(button.dataset.copy).textContent));
  }
  search.addEventListener('input', render);
  search.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const url = new URL(location.href);
    if (query()) url.searchParams.set('q', query());
    else url.searchParams.delete('q');
    history.replaceState(null, '', url);
    render();
  });
  await Promise.allSettled([
    loadStreams().catch(() => { status.textContent = 'Could not load live streams; retrying over the live connection.'; }),
    loadRecordings().catch(() => {}),
  ]);
  render();
  connect();
  setInterval(() => refreshTimes(liveGrid), 30_000);
}

main();
