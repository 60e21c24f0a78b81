// Seek bar for recordings with storyboard previews: a WebVTT file whose cues point at tiles of sprite sheets
// (`sprite_000.jpg#xywh=x,y,w,h`), shown above the bar where the pointer (or keyboard focus) is.

import { clock } from './format.js';

function seconds(stamp) {
  const parts = stamp.trim().split(':').map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

/** Parse a storyboard WebVTT into [{start, end, url, x, y, w, h}], URLs resolved against the VTT's own URL. */
export function parseStoryboard(text, baseUrl) {
  const cues = [];
  for (const block of text.replace(/\r/g, '').split(/\n\n+/)) {
    const lines = block.split('\n').filter(Boolean);
    const timing = lines.findIndex((line) => line.includes('-->'));
    if (timing < 0 || !lines[timing + 1]) continue;
    const [start, end] = lines[timing].split('-->').map((part) => seconds(part.split(' ').filter(Boolean)[0]));
    const target = new URL(lines[timing + 1].trim(), baseUrl);
    const match = /xywh=(\d+),(\d+),(\d+),(\d+)/.exec(target.hash);
    if (!match) continue;
    const [x, y, w, h] = match.slice(1).map(Number);
    target.hash = '';
    cues.push({ start, end, url: target.href, x, y, w, h });
  }
  return cues;
}

function cueAt(cues, t) {
  let low = 0;
  let high = cues.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (cues[mid].end <= t) low = mid + 1;
    else if (cues[mid].start > t) high = mid - 1;
    else return cues[mid];
  }
  return cues[Math.min(Math.max(low, 0), cues.length - 1)];
}

/**
 * Wire a range input to a video: it follows playback, seeking it seeks the video, and hovering/focusing it shows
 * the storyboard tile for that time in `preview` (a positioned element with a <span> for the time). `sheet` is the
 * size of one sprite sheet in pixels ({width, height}), so tiles can be drawn scaled down.
 */
export function attachScrubber({ range, preview, video, cues, sheet }) {
  const label = preview.querySelector('span');
  let dragging = false;
  const duration = () => (Number.isFinite(video.duration) ? video.duration : Number(range.max) || 0);

  const show = (t, fraction) => {
    if (!cues.length) return;
    const cue = cueAt(cues, t);
    const scale = Math.min(1, 200 / cue.w);
    preview.style.width = `${cue.w * scale}px`;
    preview.style.height = `${cue.h * scale}px`;
    preview.style.backgroundImage = `url("${cue.url}")`;
    preview.style.backgroundSize = `${sheet.width * scale}px ${sheet.height * scale}px`;
    preview.style.backgroundPosition = `-${cue.x * scale}px -${cue.y * scale}px`;
    const width = range.clientWidth;
    const half = (cue.w * scale) / 2;
    preview.style.left = `${Math.min(Math.max(fraction * width, half), width - half)}px`;
    label.textContent = clock(t);
    preview.hidden = false;
  };

  range.addEventListener('pointermove', (event) => {
    const box = range.getBoundingClientRect();
    const fraction = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
    show(fraction * duration(), fraction);
  });
  range.addEventListener('pointerleave', () => { if (!dragging) preview.hidden = true; });
  range.addEventListener('pointerdown', () => { dragging = true; });
  range.addEventListener('input', () => {
    const t = Number(range.value);
    show(t, duration() ? t / duration() : 0);
    video.currentTime = t;
  });
  range.addEventListener('change', () => { dragging = false; });
  range.addEventListener('blur', () => { preview.hidden = true; });
  const follow = () => {
    range.max = String(duration());
    if (!dragging) range.value = String(video.currentTime);
    range.setAttribute('aria-valuetext', `${clock(video.currentTime)} of ${clock(duration())}`);
  };
  video.addEventListener('timeupdate', follow);
  video.addEventListener('durationchange', follow);
  follow();
}
