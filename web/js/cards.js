// Stream and video cards for the grids (home, live, library). Fixed 16:9 thumbnail boxes: no layout shift.

import { h } from './dom.js';
import { ago, clock, initial, nameColour, viewers } from './format.js';

function thumbnail(url, alt) {
  return url
    ? h('img', { src: url, alt, loading: 'lazy', decoding: 'async', width: 480, height: 270 })
    : h('div', { class: 'thumb-placeholder', role: 'img', 'aria-label': alt }, initial(alt));
}

function channelDot(name) {
  const dot = h('span', { class: 'channel-dot', 'aria-hidden': 'true' }, initial(name));
  dot.style.background = nameColour(name);
  dot.style.color = '#111';
  return dot;
}

/** A live stream card; update it in place with updateStreamCard. */
export function streamCard(stream) {
  const badge = h('span', { class: 'badge live' }, 'LIVE');
  const count = h('span', { class: 'badge viewers' }, viewers(stream.viewerCount));
  const meta = h('div', { class: 'card-meta' });
  const card = h('article', { class: 'card', dataset: { streamId: stream.id }, 'aria-label': stream.title },
    h('a', { href: `watch.html?v=${encodeURIComponent(stream.id)}` },
      h('div', { class: 'thumb' }, thumbnail(stream.thumbnailUrl, `Live: ${stream.title}`), badge, count),
      h('div', { class: 'card-body' }, channelDot(stream.title),
        h('div', { class: 'card-text' }, h('h3', { class: 'card-title' }, stream.title), meta))));
  card.stream = { ...stream };
  renderMeta(card);
  return card;
}

function renderMeta(card) {
  const { stream } = card;
  const [badge, count] = card.querySelectorAll('.badge');
  const reconnecting = stream.status === 'reconnecting';
  badge.textContent = reconnecting ? 'RECONNECTING' : 'LIVE';
  badge.className = `badge ${reconnecting ? 'reconnecting' : 'live'}`;
  count.textContent = viewers(stream.viewerCount);
  card.querySelector('.card-meta').textContent = stream.startedAt ? `Started ${ago(stream.startedAt)}` : 'Live now';
}

/** Apply a partial update (viewerCount, status, thumbnailUrl, title) to a card without re-creating it. */
export function updateStreamCard(card, changes) {
  const before = card.stream.thumbnailUrl;
  card.stream = { ...card.stream, ...changes };
  if (changes.title) {
    card.querySelector('.card-title').textContent = changes.title;
    card.setAttribute('aria-label', changes.title);
  }
  if (changes.thumbnailUrl && changes.thumbnailUrl !== before) swapThumbnail(card, changes.thumbnailUrl);
  renderMeta(card);
}

/** Load the new image off-screen, then swap it in: the old frame stays until the new one is ready. */
function swapThumbnail(card, url) {
  const next = new Image();
  next.decoding = 'async';
  next.onload = () => {
    const box = card.querySelector('.thumb');
    const current = box.querySelector('img, .thumb-placeholder');
    const image = h('img', { src: url, alt: `Live: ${card.stream.title}`, width: 480, height: 270 });
    current.replaceWith(image);
  };
  next.src = url;
}

/** Refresh the "started N min ago" lines. */
export function refreshTimes(grid) {
  for (const card of grid.querySelectorAll('.card[data-stream-id]')) renderMeta(card);
}

/** A recording (VOD) card. */
export function videoCard(recording) {
  const when = recording.endedAt || recording.startedAt;
  return h('article', { class: 'card', dataset: { recordingId: recording.id }, 'aria-label': recording.title },
    h('a', { href: `watch.html?r=${encodeURIComponent(recording.id)}` },
      h('div', { class: 'thumb' }, thumbnail(recording.posterUrl, recording.title),
        recording.duration != null ? h('span', { class: 'badge duration' }, clock(recording.duration)) : null),
      h('div', { class: 'card-body' }, channelDot(recording.title),
        h('div', { class: 'card-text' }, h('h3', { class: 'card-title' }, recording.title),
          h('div', { class: 'card-meta' }, `Streamed ${ago(when)}`)))));
}

/** True when a stream or recording matches a search query (its title, which is the channel's name). */
export function matches(item, query) {
  if (!query) return true;
  return (item.title || '').toLocaleLowerCase().includes(query.trim().toLocaleLowerCase());
}
