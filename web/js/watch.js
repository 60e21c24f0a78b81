// The watch page: `?v=<playbackId>` plays a live stream (with its states: waiting, reconnecting, ended → the
// recording), `?r=<recordingId>` plays a recording with storyboard previews and chat replayed in sync,
// `?src=<same-origin playlist>` plays any HLS playlist with the live configuration (benchmarks, debugging).
// A live stream plays standard HLS through the CDN unless the viewer picks a low-latency mode (latency-mode.js):
// LL-HLS or HTTP-FLV straight from the ingest node, back to standard HLS (with a toast) when the node's endpoint
// fails before showing a picture, or keeps failing after a drop.

import { api, ApiError } from './api.js';
import { ChatPanel, ChatReplay, recentChat } from './chat.js';
import { config } from './config.js';
import { h, replace, toast } from './dom.js';
import { ago, clock, date, viewers } from './format.js';
import { LatencySwitch, MODES, nodeSource, storedMode } from './latency-mode.js';
import { Player } from './player.js';
import { renderShell } from './shell.js';
import { attachScrubber, parseStoryboard } from './storyboard.js';
import { LiveSocket } from './ws-client.js';

renderShell(null);

const $ = (id) => document.getElementById(id);
const video = $('video');
const player = new Player(video);
const chat = new ChatPanel($('chat'));
const POLL_MS = 5000;
const BEHIND_LIVE_BUTTON = 4; // seconds behind live before "Go to live" shows
const LOW_LATENCY_FIRST_FRAME_MS = 15_000; // a low-latency mode without a picture by then falls back to standard
const LOW_LATENCY_RETRIES = 4; // reloads of a low-latency source that played, while the stream is live
const LOW_LATENCY_FIRST_RETRIES = 1; // reloads of one that never played (a blip at start) before falling back

const overlay = {
  show({ title, text = '', spinner = false, soft = false, actions = [], poster = null }) {
    $('overlay-title').textContent = title;
    $('overlay-text').textContent = text;
    $('overlay-spinner').hidden = !spinner;
    replace($('overlay-actions'), actions);
    const image = $('overlay-poster');
    image.hidden = !poster;
    if (poster) image.src = poster;
    $('overlay').classList.toggle('soft', soft);
    $('overlay').hidden = false;
  },
  hide() {
    $('overlay').hidden = true;
  },
};

function retryButton(label = 'Try again') {
  return h('button', { class: 'button primary', type: 'button', on: { click: () => location.reload() } }, label);
}

function setTitle(text) {
  $('title').textContent = text;
  document.title = `${text} — CaptureStream`;
}

function setupTheatre() {
  const button = $('theatre');
  const apply = (on) => {
    $('watch').classList.toggle('theatre', on);
    button.setAttribute('aria-pressed', String(on));
    localStorage.setItem('capturestream.theatre', on ? '1' : '0');
  };
  apply(localStorage.getItem('capturestream.theatre') === '1');
  button.addEventListener('click', () => apply(button.getAttribute('aria-pressed') !== 'true'));
}

function showLatency(seconds) {
  const pill = $('latency');
  if (seconds == null) {
    pill.hidden = true;
    $('go-live').hidden = true;
    return;
  }
  pill.hidden = false;
  pill.textContent = `${seconds.toFixed(1)} s behind live`;
  pill.classList.toggle('warn', seconds > BEHIND_LIVE_BUTTON);
  $('go-live').hidden = !(seconds > BEHIND_LIVE_BUTTON || video.paused);
}

// ---------------------------------------------------------------- live
async function watchLive(streamId) {
  let stream = null;
  let source = null;
  let endedTimer = null;
  let chatLoadedFor = null;
  const socket = new LiveSocket();
  const node = (await config()).playbackUrl || null;
  const modes = new LatencySwitch($('latency-mode'));
  let mode = node ? storedMode() : 'standard'; // what plays now
  let played = false; // the current mode has shown a picture on this page
  let retries = 0;
  let retryTimer = null;
  let firstFrameTimer = null;
  modes.select(mode);

  /** (Re)load the current mode's source: the CDN's playlist, or the node's LL-HLS / HTTP-FLV. */
  function startPlayback() {
    clearTimeout(firstFrameTimer);
    clearTimeout(retryTimer);
    retryTimer = null;
    source = stream.playbackUrl;
    video.controls = true;
    const url = node && nodeSource(mode, node, streamId);
    if (!url) player.loadHls(source, { live: true });
    else if (mode === 'flv') player.loadFlv(url);
    else player.loadHls(url, { live: true, lowLatency: true });
    if (url && !played) {
      firstFrameTimer = setTimeout(() => stream.status === 'live' && fallBack('no picture'), LOW_LATENCY_FIRST_FRAME_MS);
    }
    overlay.show({ title: 'Starting…', spinner: true, soft: true });
  }

  function fallBack(reason) {
    if (mode === 'standard') return;
    console.warn(`watch: ${mode} failed (${reason}); playing standard HLS`);
    toast(`${MODES[mode]} is not available (${reason}): playing standard HLS.`);
    mode = 'standard';
    modes.select(mode);
    played = false;
    startPlayback();
  }

  modes.on('change', (next) => {
    mode = next;
    played = false;
    retries = 0;
    if (stream && stream.playbackUrl && stream.status !== 'ended') startPlayback();
  });

  player.on('playing', () => {
    clearTimeout(firstFrameTimer);
    played = true;
    retries = 0;
    if (stream && stream.status === 'live') overlay.hide();
  })
    .on('sourceError', async (message) => {
      if (mode === 'standard' || retryTimer) return;
      retryTimer = -1; // one reaction per failure, however many errors the source reports
      await poll(); // a drop or the end? Reconnecting: apply() reloads when live again; ended: it shows the end.
      if (mode === 'standard' || !stream || stream.status !== 'live') {
        retryTimer = null;
        return;
      }
      retries += 1;
      if (retries > (played ? LOW_LATENCY_RETRIES : LOW_LATENCY_FIRST_RETRIES)) {
        retryTimer = null;
        fallBack(message);
        return;
      }
      retryTimer = setTimeout(startPlayback, 1000 * retries);
    })
    .on('latency', showLatency)
    .on('ended', () => showEnded())
    .on('fatal', (message) => overlay.show({
      title: 'Playback stopped', text: `The video could not be played (${message}).`, actions: [retryButton()],
    }));
  $('go-live').addEventListener('click', () => player.goLive());

  function setCount(count) {
    $('viewer-count').textContent = viewers(count);
  }

  function waiting() {
    setTitle(stream ? stream.title : 'Waiting for the streamer');
    video.controls = false;
    overlay.show({
      title: 'Waiting for the streamer…',
      text: 'This page starts playing by itself as soon as the stream goes live.',
      spinner: true,
      poster: stream && stream.thumbnailUrl,
    });
    chat.disableSending('Chat opens when the stream goes live.');
  }

  async function showEnded() {
    if (!stream || stream.status !== 'ended') return;
    clearTimeout(endedTimer);
    endedTimer = null;
    player.destroy();
    showLatency(null);
    video.controls = false; // nothing to control; the overlay offers the recording
    $('go-live').hidden = true;
    $('live-pill').hidden = true;
    $('viewer-count').textContent = '';
    chat.disableSending('Chat is closed: the broadcast has ended.');
    const base = { title: 'This broadcast has ended', poster: stream.thumbnailUrl };
    let recording = null;
    try {
      recording = await api(`/api/recordings/${encodeURIComponent(stream.sessionId)}`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
    if (recording && recording.status === 'ready') {
      overlay.show({
        ...base,
        text: `The recording is ready${recording.duration ? ` (${clock(recording.duration)})` : ''}.`,
        actions: [h('a', { class: 'button primary', href: `watch.html?r=${encodeURIComponent(recording.id)}` }, 'Watch the recording')],
      });
    } else if (recording && recording.status === 'building') {
      overlay.show({ ...base, text: 'The recording is being prepared. It appears here in a moment.', spinner: true });
    } else {
      overlay.show({ ...base, text: 'No recording is available for this broadcast.' });
    }
    return recording;
  }

  function apply(next) {
    const previous = stream;
    stream = next;
    if (!previous || previous.sessionId !== next.sessionId) {
      // The gateway refuses a subscription to a stream that does not exist yet: subscribe again now that it does.
      socket.resubscribe(streamId);
    }
    setTitle(stream.title);
    setCount(stream.viewerCount);
    $('started').textContent = stream.status === 'ended' ? `Streamed ${ago(stream.endedAt)}` : `Started ${ago(stream.startedAt)}`;
    $('live-pill').hidden = stream.status !== 'live';
    if (chatLoadedFor !== stream.sessionId && stream.status !== 'ended') {
      chatLoadedFor = stream.sessionId;
      chat.clear();
      recentChat(streamId, stream.sessionId, stream.startedAt)
        .then((items) => chat.add(items))
        .catch(() => chat.setStatus('Earlier messages could not be loaded.'));
    }
    modes.show(Boolean(node) && (stream.status === 'live' || stream.status === 'reconnecting'));
    if (stream.status === 'live' || stream.status === 'reconnecting') {
      chat.setStatus('');
      chat.form.hidden = false;
      const resumed = previous && previous.status === 'reconnecting' && stream.status === 'live';
      if (stream.playbackUrl && (stream.playbackUrl !== source || (resumed && mode !== 'standard'))) {
        startPlayback(); // the node's live sources start again from the resumed stream's first keyframe
      }
      if (stream.status === 'reconnecting') {
        overlay.show({
          title: 'Reconnecting…',
          text: 'The streamer’s connection dropped. Playback resumes here when they are back.',
          spinner: true, soft: true,
        });
      } else if (previous && previous.status === 'reconnecting' && !video.paused) {
        overlay.hide();
      }
    } else if (stream.status === 'ended') {
      source = null;
      // Let the player finish what it has (the playlist now has ENDLIST), then offer the recording.
      if (!video.paused && !video.ended && player.hls) {
        clearTimeout(endedTimer);
        endedTimer = setTimeout(showEnded, 6000);
      } else {
        showEnded();
      }
    }
  }

  async function poll() {
    try {
      const next = await api(`/api/stream/${encodeURIComponent(streamId)}`);
      const changed = !stream || next.status !== stream.status || next.sessionId !== stream.sessionId;
      if (changed) apply(next);
      else {
        stream = { ...stream, ...next };
        setCount(next.viewerCount);
        // Ended but the recording not offered yet (its build was not ready): ask again, unless the tail still plays.
        const offered = !$('overlay').hidden && $('overlay-actions').childElementCount;
        if (stream.status === 'ended' && !endedTimer && !offered) showEnded();
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) waiting();
      else if (!stream) overlay.show({ title: 'Cannot reach CaptureStream', text: error.message, actions: [retryButton()] });
    }
  }

  chat.enableSending((text) => socket.send({ type: 'chat', streamId, text }));
  socket
    .on('viewerCount', (m) => { if (m.streamId === streamId) setCount(m.count); })
    .on('chat', (m) => { if (m.streamId === streamId) chat.add([m]); })
    .on('streamLive', (m) => { if (m.stream.streamId === streamId) poll(); })
    .on('streamEnded', (m) => { if (m.streamId === streamId) poll(); })
    .on('error', (m) => {
      if (m.code === 'rate_limited' && /chat/.test(m.message || '')) {
        const match = /retry in (\d+(?:\.\d+)?)\s*s/.exec(m.message || '');
        chat.cooldown(match ? Math.max(1, Math.ceil(Number(match[1]))) : 3);
      } else if (m.code !== 'not_found' || stream) {
        chat.setStatus(m.message || 'Something went wrong.');
      }
    })
    .on('state', (state) => {
      if (state === 'reconnecting') chat.setStatus('Connection lost. Reconnecting…');
      else if (state === 'open') chat.setStatus('');
    });
  socket.subscribe(streamId);
  await poll();
  socket.connect();
  setInterval(poll, POLL_MS);
}

// ---------------------------------------------------------------- recordings
async function watchRecording(recordingId) {
  $('chat-heading').textContent = 'Chat replay';
  chat.disableSending('');
  let recording;
  try {
    recording = await api(`/api/recordings/${encodeURIComponent(recordingId)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      setTitle('Video not found');
      overlay.show({ title: 'This video does not exist', text: 'It may have been deleted by its owner.',
        actions: [h('a', { class: 'button primary', href: 'library.html' }, 'Browse the library')] });
      return;
    }
    overlay.show({ title: 'Cannot reach CaptureStream', text: error.message, actions: [retryButton()] });
    return;
  }
  setTitle(recording.title);
  $('started').textContent = `Streamed ${date(recording.startedAt)}${recording.duration ? ` · ${clock(recording.duration)}` : ''}`;
  if (recording.stats) $('viewer-count').textContent = `${viewers(recording.stats.peakViewers)} at peak`;
  if (recording.status === 'building') {
    overlay.show({ title: 'Preparing the recording…', text: 'This takes a moment after a broadcast ends.', spinner: true,
      poster: recording.posterUrl });
    setTimeout(() => location.reload(), POLL_MS);
    return;
  }
  if (recording.status === 'failed') {
    overlay.show({ title: 'This recording could not be built', text: recording.error || '', poster: recording.posterUrl });
    return;
  }
  if (recording.posterUrl) video.poster = recording.posterUrl;
  player.on('fatal', (message) => overlay.show({ title: 'Playback stopped', text: message, actions: [retryButton()] }));
  if (recording.mp4Url) {
    player.loadMp4(recording.mp4Url);
    player.play();
  } else {
    player.loadHls(recording.playlistUrl, { live: false });
  }
  overlay.hide();

  let cues = [];
  let sheet = { width: 0, height: 0 };
  if (recording.storyboard) {
    const board = recording.storyboard;
    sheet = { width: board.columns * board.tileWidth, height: board.rows * board.tileHeight };
    try {
      const response = await fetch(board.vttUrl);
      if (response.ok) cues = parseStoryboard(await response.text(), new URL(board.vttUrl, location.href).href);
    } catch {
      cues = [];
    }
  }
  $('scrub').hidden = false;
  attachScrubber({ range: $('seek'), preview: $('scrub-preview'), video, cues, sheet });
  new ChatReplay(chat, video, { streamId: recording.playbackId, sessionId: recording.id, duration: recording.duration })
    .sync(true);
}

// ---------------------------------------------------------------- a bare playlist
function watchSource(src) {
  const url = new URL(src, location.href);
  if (url.origin !== location.origin) {
    overlay.show({ title: 'Only playlists of this site can be played here.' });
    return;
  }
  setTitle(url.pathname);
  $('chat').hidden = true;
  player.on('playing', () => overlay.hide()).on('latency', showLatency);
  $('go-live').addEventListener('click', () => player.goLive());
  player.loadHls(url.href, { live: true });
  overlay.show({ title: 'Starting…', spinner: true, soft: true });
}

setupTheatre();
const params = new URLSearchParams(location.search);
if (params.get('r')) watchRecording(params.get('r'));
else if (params.get('v')) watchLive(params.get('v'));
else if (params.get('src')) watchSource(params.get('src'));
else {
  setTitle('Nothing to watch');
  overlay.show({ title: 'No video selected', actions: [h('a', { class: 'button primary', href: 'index.html' }, 'See who is live')] });
}
