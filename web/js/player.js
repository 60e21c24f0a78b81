// The video player: hls.js wherever Media Source Extensions exist, native HLS only where they don't (Safari/iOS),
// progressive MP4 for recordings. Tuned for low latency live (CHROMIUM.md "tuned A": 1 s behind the newest
// segment, catch up at up to 1.5× when behind), and self-healing: network errors reload, media errors recover.
//
// Events (on player): `playing`, `waiting`, `fatal` (detail: message), `ended`, `latency` (detail: seconds|null).

import { Emitter } from './emitter.js';

/* global Hls */

export const LIVE_CONFIG = {
  lowLatencyMode: true,
  liveSyncDuration: 1,
  liveMaxLatencyDuration: 3,
  maxLiveSyncPlaybackRate: 1.5,
  backBufferLength: 10,
  enableWorker: true,
  // The live playlist may 404 for a moment when a broadcast starts; keep trying instead of giving up.
  manifestLoadPolicy: {
    default: {
      maxTimeToFirstByteMs: 10_000, maxLoadTimeMs: 20_000,
      timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: 6, retryDelayMs: 500, maxRetryDelayMs: 4000 },
    },
  },
};

const RECOVER_LIMIT = 5;

export class Player extends Emitter {
  constructor(video) {
    super();
    this.video = video;
    this.hls = null;
    this.live = false;
    this.recoveries = 0;
    this.latencyTimer = null;
    for (const type of ['playing', 'waiting', 'ended']) {
      video.addEventListener(type, () => this.emit(type, null));
    }
    video.addEventListener('playing', () => { this.recoveries = 0; });
  }

  /** Play an HLS playlist (live or VOD). */
  loadHls(url, { live = true } = {}) {
    this.destroy();
    this.live = live;
    this.source = url;
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls(live ? LIVE_CONFIG : { enableWorker: true });
      this.hls = hls;
      window.capturestreamPlayer = hls; // for benchmarks and debugging
      hls.on(Hls.Events.ERROR, (_event, data) => this.onError(data));
      hls.on(Hls.Events.MANIFEST_PARSED, () => this.play());
      hls.loadSource(url);
      hls.attachMedia(this.video);
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.video.src = url; // Safari / iOS: native HLS, which follows EXT-X-PROGRAM-DATE-TIME itself
      this.play();
    } else {
      this.emit('fatal', 'This browser cannot play HLS video.');
      return;
    }
    if (live) this.latencyTimer = setInterval(() => this.emit('latency', this.latency()), 1000);
  }

  /** Play a progressive MP4 (a recording). */
  loadMp4(url) {
    this.destroy();
    this.live = false;
    this.video.src = url;
    this.video.addEventListener('error', () => this.emit('fatal', 'The video could not be loaded.'), { once: true });
  }

  play() {
    const attempt = this.video.play();
    if (attempt) {
      attempt.catch(() => {
        // Autoplay with sound was refused: start muted, the viewer can unmute.
        this.video.muted = true;
        this.video.play().catch(() => {});
      });
    }
  }

  /** Seconds between the wall clock and the frame on screen (from EXT-X-PROGRAM-DATE-TIME), else behind the edge. */
  latency() {
    const hls = this.hls;
    if (!hls) return null;
    if (hls.playingDate) return Math.max(0, (Date.now() - hls.playingDate.getTime()) / 1000);
    return Number.isFinite(hls.latency) ? hls.latency : null;
  }

  /** Jump to the live edge (what the "Go to live" button does). */
  goLive() {
    if (this.hls && Number.isFinite(this.hls.liveSyncPosition)) this.video.currentTime = this.hls.liveSyncPosition;
    this.play();
  }

  onError(data) {
    if (!data.fatal) return;
    if (this.recoveries >= RECOVER_LIMIT) {
      this.emit('fatal', data.details || 'playback error');
      return;
    }
    this.recoveries += 1;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      this.hls.recoverMediaError();
    } else if (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR
      || data.details === Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT) {
      // A broadcast that just started may list no playlist yet (its first segment is still being cut), and
      // startLoad() never fetches a manifest that failed: load the source again, later each time.
      const source = this.source;
      setTimeout(() => this.hls && this.source === source && this.hls.loadSource(source), 2000 * this.recoveries);
    } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      setTimeout(() => this.hls && this.hls.startLoad(), 1000 * this.recoveries);
    } else {
      this.emit('fatal', data.details || 'playback error');
    }
  }

  destroy() {
    clearInterval(this.latencyTimer);
    this.latencyTimer = null;
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
      window.capturestreamPlayer = null;
    }
    this.video.removeAttribute('src');
    this.video.load();
  }
}
