// Studio: the owner's page. Sign in with a token, manage channels (create, rename), the stream key (hidden until
// revealed, copy, rotate with confirmation), OBS settings, live health charts with warnings, browser go-live and
// past broadcasts with their stats.

import { api, ApiError } from './api.js';
import { config } from './config.js';
import { copyText, h, replace, toast } from './dom.js';
import { bytes, clock, date, viewers } from './format.js';
import { BrowserBroadcast } from './golive.js';
import { HealthCharts } from './health.js';
import { claims, setToken, token } from './session.js';
import { renderShell } from './shell.js';

renderShell('studio');

const $ = (id) => document.getElementById(id);
const HEALTH_POLL_MS = 5000;
const KEYS = 'capturestream.keys'; // sessionStorage: keys this tab was given (shown once by the API)

let channels = [];
let current = null;
const charts = new HealthCharts();
let healthTimer = null;

function issuedKeys() {
  try {
    return JSON.parse(sessionStorage.getItem(KEYS) || '{}');
  } catch {
    return {};
  }
}

function rememberKey(channelId, key) {
  sessionStorage.setItem(KEYS, JSON.stringify({ ...issuedKeys(), [channelId]: key }));
}

function confirmDialog(title, text, okLabel) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

// ------------------------------------------------------------ sign-in
function showSignIn(message = '') {
  $('sign-in').hidden = false;
  $('studio').hidden = true;
  $('token-error').textContent = message;
  if (location.hash === '#sign-in' || message) $('token-input').focus();
}

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  setToken($('token-input').value.trim());
  try {
    await loadChannels();
    $('token-input').value = '';
    renderShell('studio');
    renderUser();
  } catch (error) {
    setToken(null);
    showSignIn(error instanceof ApiError && error.status === 401 ? 'That token was not accepted.' : error.message);
  }
});

function renderUser() {
  const user = claims();
  replace($('studio-user'), user ? [
    h('span', { class: 'hint' }, `Signed in as ${user.name || user.sub}`),
    h('button', { class: 'button small', type: 'button', on: { click: () => { setToken(null); location.reload(); } } }, 'Sign out'),
  ] : []);
}

// ------------------------------------------------------------ channels
async function loadChannels() {
  const page = await api('/api/channels/me?limit=100', { auth: true });
  channels = page.channels;
  $('sign-in').hidden = true;
  $('studio').hidden = false;
  renderTabs();
  select(channels.find((c) => current && c.channelId === current.channelId) || channels[0] || null);
}

function renderTabs() {
  replace($('channel-tabs'), channels.map((channel) => h('button', {
    class: 'button small', type: 'button', 'aria-pressed': String(current && channel.channelId === current.channelId),
    on: { click: () => select(channel) },
  }, channel.name)));
}

function select(channel) {
  current = channel;
  renderTabs();
  const has = Boolean(channel);
  $('no-channel').hidden = has;
  for (const id of ['rename-form', 'channel-facts', 'obs', 'health', 'go-live', 'past']) $(id).hidden = !has;
  if (!has) return;
  $('rename-name').value = channel.name;
  const watch = `watch.html?v=${encodeURIComponent(channel.playbackId)}`;
  $('watch-link').href = watch;
  $('watch-link').textContent = new URL(watch, location.href).href;
  showKey(issuedKeys()[channel.channelId] || null);
  loadPast();
  pollHealth();
}

$('create-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('channel-error').textContent = '';
  try {
    const created = await api('/api/channels', { method: 'POST', auth: true, body: { name: $('create-name').value } });
    rememberKey(created.channel.channelId, created.streamKey);
    $('create-name').value = '';
    channels.push(created.channel);
    select(created.channel);
    toast('Channel created. Your stream key is below: copy it now.');
  } catch (error) {
    $('channel-error').textContent = error.message;
  }
});

$('rename-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('channel-error').textContent = '';
  try {
    const renamed = await api(`/api/channels/${encodeURIComponent(current.channelId)}`, {
      method: 'PATCH', auth: true, body: { name: $('rename-name').value },
    });
    channels = channels.map((c) => (c.channelId === renamed.channelId ? renamed : c));
    select(renamed);
    toast('Channel renamed');
  } catch (error) {
    $('channel-error').textContent = error.message;
  }
});

// ------------------------------------------------------------ stream key
function showKey(key) {
  const input = $('stream-key');
  input.value = key || '';
  input.type = 'password';
  $('reveal-key').setAttribute('aria-pressed', 'false');
  $('reveal-key').textContent = 'Reveal';
  $('reveal-key').disabled = !key;
  $('copy-key').disabled = !key;
  $('golive-key').value = key || '';
  $('key-hint').textContent = key
    ? 'Keep it secret: anyone with this key can stream to your channel.'
    : 'Stream keys are stored hashed and shown only once. Rotate to get a new one (the old key stops working).';
}

$('reveal-key').addEventListener('click', () => {
  const input = $('stream-key');
  const reveal = input.type === 'password';
  input.type = reveal ? 'text' : 'password';
  $('reveal-key').setAttribute('aria-pressed', String(reveal));
  $('reveal-key').textContent = reveal ? 'Hide' : 'Reveal';
});
$('copy-key').addEventListener('click', () => copyText($('stream-key').value));
$('rotate-key').addEventListener('click', async () => {
  const ok = await confirmDialog('Rotate the stream key?',
    'The current key stops working immediately: OBS and anything else using it will be disconnected the next time they connect.',
    'Rotate key');
  if (!ok) return;
  try {
    const rotated = await api(`/api/channels/${encodeURIComponent(current.channelId)}/rotate-key`, { method: 'POST', auth: true });
    rememberKey(current.channelId, rotated.streamKey);
    showKey(rotated.streamKey);
    toast('New stream key issued. Update it in OBS.');
  } catch (error) {
    toast(`Rotation failed: ${error.message}`);
  }
});
for (const button of document.querySelectorAll('[data-copy-input]')) {
  button.addEventListener('click', () => copyText($(button.dataset.copyInput).value));
}

// ------------------------------------------------------------ health
async function pollHealth() {
  clearTimeout(healthTimer);
  if (!current) return;
  const channel = current;
  const id = encodeURIComponent(channel.playbackId);
  const absent = (error) => {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  };
  let stream = null;
  let health = null;
  try {
    [stream, health] = await Promise.all([
      api(`/api/stream/${id}`).catch(absent),
      api(`/api/streams/${id}/health`).catch(absent),
    ]);
  } catch {
    $('health-summary').textContent = 'Health is unavailable right now.';
  }
  if (channel !== current) return;
  const status = stream ? stream.status : 'offline';
  const live = status === 'live' || status === 'reconnecting';
  $('live-dot').className = `status-dot ${status === 'live' ? 'live' : status === 'reconnecting' ? 'warn' : ''}`;
  $('live-status').textContent = {
    live: `Live · ${viewers(stream && stream.viewerCount)}`,
    reconnecting: 'Reconnecting… (the encoder dropped; waiting for it to come back)',
    ended: 'Offline (last broadcast ended)',
  }[status] || 'Offline (never streamed)';
  const samples = live && health && health.sessionId === stream.sessionId ? health.samples : [];
  const warnings = charts.update(samples);
  const media = (health && health.media) || (stream && stream.media);
  $('health-summary').textContent = live && media
    ? [media.width && `${media.width}×${media.height}`, media.frameRate && `${Math.round(media.frameRate)} fps`,
      media.videoCodec, media.audioCodec].filter(Boolean).join(' · ')
    : 'Start streaming to see live health.';
  replace($('warnings'), live && samples.length
    ? (warnings.length ? warnings.map((text) => h('li', {}, text)) : [h('li', { class: 'ok' }, 'Stream is healthy.')])
    : []);
  healthTimer = setTimeout(pollHealth, HEALTH_POLL_MS);
}

// ------------------------------------------------------------ past broadcasts
async function loadPast() {
  const channel = current;
  let items = [];
  try {
    const page = await api(`/api/channels/${encodeURIComponent(channel.channelId)}/recordings?limit=50`, { auth: true });
    items = page.items;
  } catch (error) {
    $('past-empty').textContent = `Past broadcasts could not be loaded: ${error.message}`;
  }
  if (channel !== current) return;
  $('past-empty').hidden = items.length > 0;
  replace($('past-rows'), items.map((rec) => {
    const stats = rec.stats || {};
    const watch = rec.status === 'ready'
      ? h('a', { class: 'button small', href: `watch.html?r=${encodeURIComponent(rec.id)}` }, 'Watch') : null;
    const remove = h('button', { class: 'button small danger', type: 'button', on: { click: () => deleteRecording(rec) } }, 'Delete');
    return h('tr', {},
      h('td', {}, h('div', {}, rec.title), h('div', { class: 'hint' }, date(rec.startedAt))),
      h('td', {}, rec.status),
      h('td', { class: 'num' }, rec.duration != null ? clock(rec.duration) : '—'),
      h('td', { class: 'num' }, stats.peakViewers != null ? String(stats.peakViewers) : '—'),
      h('td', { class: 'num' }, stats.averageViewers != null ? stats.averageViewers.toFixed(1) : '—'),
      h('td', { class: 'num' }, stats.chatMessages != null ? String(stats.chatMessages) : '—'),
      h('td', { class: 'num' }, stats.reconnects != null ? String(stats.reconnects) : '—'),
      h('td', { class: 'num' }, rec.size != null ? bytes(rec.size) : '—'),
      h('td', {}, h('div', { class: 'field-row' }, watch, remove)));
  }));
}

async function deleteRecording(rec) {
  const ok = await confirmDialog('Delete this recording?', `“${rec.title}” from ${date(rec.startedAt)} and its chat replay will be removed for everyone.`, 'Delete');
  if (!ok) return;
  try {
    await api(`/api/recordings/${encodeURIComponent(rec.id)}`, { method: 'DELETE', auth: true });
    toast('Recording deleted');
    loadPast();
  } catch (error) {
    toast(`Delete failed: ${error.message}`);
  }
}

// ------------------------------------------------------------ browser go-live
function setupGoLive() {
  const broadcast = new BrowserBroadcast($('golive-preview'));
  let clockTimer = null;
  const status = (dot, text) => replace($('golive-status'), h('span', { class: `status-dot ${dot}` }), h('span', {}, text));
  let lastStats = '';
  broadcast
    .on('live', () => {
      $('golive-start').disabled = true;
      $('golive-stop').disabled = false;
      clockTimer = setInterval(() => status('live', `LIVE ${clock((Date.now() - broadcast.startedAt) / 1000)}${lastStats}`), 1000);
      pollHealth();
    })
    .on('stats', (s) => {
      const lag = s.uploadLagSeconds != null ? ` · upload lag ${s.uploadLagSeconds.toFixed(1)} s` : '';
      const sent = s.bytesReceived != null ? ` · ${bytes(s.bytesReceived)} sent` : '';
      lastStats = `${sent}${lag}`;
    })
    .on('congested', () => { lastStats = ' · your upload cannot keep up: lower the quality'; })
    .on('error', (message) => { $('golive-error').textContent = message; })
    .on('stopped', () => {
      clearInterval(clockTimer);
      status('', 'Not live');
      $('golive-start').disabled = false;
      $('golive-stop').disabled = true;
      setTimeout(loadPast, 3000);
    });
  $('golive-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('golive-error').textContent = '';
    const [width, height, frameRate, videoBitrateKbps] = $('golive-quality').value.split('x').map(Number);
    $('golive-start').disabled = true;
    status('warn', 'Connecting…');
    try {
      await broadcast.start({
        source: $('golive-source').value, width, height, frameRate, videoBitrateKbps,
        audio: $('golive-audio').checked, streamKey: $('golive-key').value.trim(),
      });
    } catch (error) {
      $('golive-error').textContent = error.message;
      status('', 'Not live');
      broadcast.cleanup();
      $('golive-start').disabled = false;
    }
  });
  $('golive-stop').addEventListener('click', () => broadcast.stop());
}

async function main() {
  const { rtmpUrl } = await config();
  $('obs-server').value = rtmpUrl;
  setupGoLive();
  renderUser();
  if (!token()) {
    showSignIn();
    return;
  }
  try {
    await loadChannels();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setToken(null);
      showSignIn('Your sign-in expired. Paste a fresh token.');
    } else {
      showSignIn(error.message);
    }
  }
  if (location.hash === '#go-live' && !$('go-live').hidden) $('go-live').scrollIntoView();
}

main();
