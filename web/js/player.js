// The video player: hls.js wherever Media Source Extensions exist, native HLS only where they don't (Safari/iOS),
// progressive MP4 for recordings. Tuned for low latency live (CHROMIUM.md "tuned A": 1 s behind the newest
// segment, catch up at up to 1.5× when behind), and self-healing: network errors reload, media errors recover.
// The watch page's low-latency modes play from the ingest node itself: LL-HLS with hls.js `lowLatencyMode` (held
// back by the playlist's PART-HOLD-BACK), and HTTP-FLV with mpegts.js (loaded on first use, not with the page).
// A low-latency source that fails is not healed here: the page decides (retry, or fall back to standard HLS).
//
// Events (on player): `playing`, `waiting`, `fatal` (detail: message), `ended`, `latency` (detail: seconds|null),
// `sourceError` (detail: message; a low-latency source failed or its stream ended).

import { Emitter } from './emitter.js';

/* global Hls */

/** hls.js's manifest load policy: `retries` on timeouts and on errors, waits growing to `maxDelayMs`. */
function manifestPolicy(firstByteMs, retries, maxDelayMs) {
  return {
    default: {
      maxTimeToFirstByteMs: firstByteMs, maxLoadTimeMs: 2 * firstByteMs,
      timeoutRetry: { maxNumRetry: retries.timeouts, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: retries.errors, retryDelayMs: 500, maxRetryDelayMs: maxDelayMs },
    },
  };
}

export const LIVE_CONFIG = {
  lowLatencyMode: true,
  liveSyncDuration: 1,
  liveMaxLatencyDuration: 3,
  maxLiveSyncPlaybackRate: 1.5,
  backBufferLength: 10,
  enableWorker: true,
  // The live playlist may 404 for a moment when a broadcast starts; keep trying instead of giving up.
  manifestLoadPolicy: manifestPolicy(10_000, { timeouts: 4, errors: 6 }, 4000),
};

// LL-HLS from the node: no liveSyncDuration, so hls.js holds back PART-HOLD-BACK (a few parts) instead of 1 s;
// the node knows the stream as soon as it is live, so a playlist that does not load fails fast (→ standard HLS).
export const LL_HLS_CONFIG = {
  lowLatencyMode: true,
  maxLiveSyncPlaybackRate: 1.5,
  backBufferLength: 10,
  enableWorker: true,
  manifestLoadPolicy: manifestPolicy(5_000, { timeouts: 1, errors: 2 }, 1000),
};

// HTTP-FLV: mpegts.js's stash buffer grows with the measured link speed (1/8 s of it on a live stream, up to 8 MB:
// on a fast link that is latency), so none. Almost all of this mode's glass-to-glass is the media buffered ahead of
// the playhead, so keep ~0.25 s: play 1.2× faster above 0.4 s, jump when more than 0.6 s is buffered (the node's
// GOP cache hands a new viewer up to a second at once). bench.glass_to_glass: p50 0.29 s with these, 0.68 s with
// 0.4 s / 0.8 s / 1 s, the buffer being 0.2-0.25 s of it; 0.2 s targets jumped on a loaded box.
export const FLV_CONFIG = {
  enableWorker: false,
  enableStashBuffer: false,
  lazyLoad: false,
  autoCleanupSourceBuffer: true,
  autoCleanupMaxBackwardDuration: 30,
  autoCleanupMinBackwardDuration: 10,
  liveBufferLatencyChasing: true,
  liveBufferLatencyMaxLatency: 0.6,
  liveBufferLatencyMinRemain: 0.2,
  liveSync: true,
  liveSyncMaxLatency: 0.4,
  liveSyncTargetLatency: 0.25,
  liveSyncPlaybackRate: 1.2,
};
const MPEGTS_SRC = new URL('../vendor/mpegts.js/mpegts.js', import.meta.url).href;
let mpegtsLoaded = null;

/** mpegts.js, added to the page on first use (275 KB the standard player never needs). */
function loadMpegts() {
  if (!mpegtsLoaded) {
    mpegtsLoaded = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = MPEGTS_SRC;
      script.onload = () => {
        if (!window.mpegts) {
          reject(new Error('mpegts.js did not load'));
          return;
        }
        Object.assign(window.mpegts.LoggingControl, { enableDebug: false, enableVerbose: false, enableInfo: false });
        resolve(window.mpegts);
      };
      script.onerror = () => {
        mpegtsLoaded = null;
        reject(new Error('mpegts.js could not be loaded'));
      };
      document.head.append(script);
    });
  }
  return mpegtsLoaded;
}

const RECOVER_LIMIT = 5;

export class Player extends Emitter {
  constructor(video) {
    super();
    this.video = video;
    this.hls = null;
    this.flv = null;
    this.kind = null; // 'hls' | 'll-hls' | 'flv' | 'native' | 'mp4'
    this.generation = 0; // bumped by destroy(): late callbacks of a replaced source do nothing
    this.live = false;
    this.recoveries = 0;
    this.latencyTimer = null;
    for (const type of ['playing', 'waiting', 'ended']) {
      video.addEventListener(type, () => this.emit(type, null));
    }
    video.addEventListener('playing', () => { this.recoveries = 0; });
  }

  /** Play an HLS playlist (live or VOD); `lowLatency`: LL-HLS from the node (parts, blocking reloads). */
  loadHls(url, { live = true, lowLatency = false } = {}) {
    this.destroy();
    this.live = live;
    this.source = url;
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls(lowLatency ? LL_HLS_CONFIG : live ? LIVE_CONFIG : { enableWorker: true });
      this.hls = hls;
      this.kind = lowLatency ? 'll-hls' : 'hls';
      window.capturestreamPlayer = hls; // for benchmarks and debugging
      hls.on(Hls.Events.ERROR, (_event, data) => this.onError(data));
      hls.on(Hls.Events.MANIFEST_PARSED, () => this.play());
      hls.loadSource(url);
      hls.attachMedia(this.video);
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.kind = 'native';
      this.video.src = url; // Safari / iOS: native HLS (LL-HLS too), which follows EXT-X-PROGRAM-DATE-TIME itself
      this.play();
    } else {
      this.emit('fatal', 'This browser cannot play HLS video.');
      return;
    }
    if (live) this.latencyTimer = setInterval(() => this.emit('latency', this.latency()), 1000);
  }

  /** Play a live HTTP-FLV (or WebSocket-FLV: a ws:// URL) stream with mpegts.js; `sourceError` when it fails. */
  async loadFlv(url) {
    this.destroy();
    this.live = true;
    this.source = url;
    this.kind = 'flv';
    const generation = this.generation;
    let mpegts;
    try {
      mpegts = await loadMpegts();
    } catch (error) {
      if (generation === this.generation) this.emit('sourceError', error.message);
      return;
    }
    if (generation !== this.generation) return; // replaced while the library loaded
    if (!mpegts.isSupported() || !mpegts.getFeatureList().mseLivePlayback) {
      this.emit('sourceError', 'this browser cannot play HTTP-FLV');
      return;
    }
    const flv = mpegts.createPlayer({ type: 'flv', isLive: true, url }, FLV_CONFIG); // ws:// URLs: WS-FLV
    this.flv = flv;
    window.capturestreamFlv = flv; // for benchmarks and debugging
    flv.on(mpegts.Events.ERROR, (kind, detail) => this.emit('sourceError', `${kind}: ${detail}`));
    flv.on(mpegts.Events.LOADING_COMPLETE, () => this.emit('sourceError', 'the stream ended'));
    flv.attachMediaElement(this.video);
    flv.load();
    this.play();
    this.latencyTimer = setInterval(() => this.emit('latency', this.latency()), 1000);
  }

  /** Play a progressive MP4 (a recording). */
  loadMp4(url) {
    this.destroy();
    this.kind = 'mp4';
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

  /** Seconds between the wall clock and the frame on screen (from EXT-X-PROGRAM-DATE-TIME), else behind the edge
   * (for FLV: behind the newest media received, the node sends as it receives). */
  latency() {
    if (this.flv) return this.bufferedAhead();
    const hls = this.hls;
    if (!hls) return null;
    if (hls.playingDate) return Math.max(0, (Date.now() - hls.playingDate.getTime()) / 1000);
    return Number.isFinite(hls.latency) ? hls.latency : null;
  }

  /** Seconds of media buffered ahead of the playhead (null when nothing is). */
  bufferedAhead() {
    const { buffered, currentTime } = this.video;
    return buffered.length ? Math.max(0, buffered.end(buffered.length - 1) - currentTime) : null;
  }

  /** Jump to the live edge (what the "Go to live" button does). */
  goLive() {
    if (this.hls && Number.isFinite(this.hls.liveSyncPosition)) this.video.currentTime = this.hls.liveSyncPosition;
    const ahead = this.flv && this.bufferedAhead();
    if (ahead > FLV_CONFIG.liveBufferLatencyMinRemain) {
      this.video.currentTime += ahead - FLV_CONFIG.liveBufferLatencyMinRemain;
    }
    this.play();
  }

  onError(data) {
    if (!data.fatal) return;
    if (this.kind === 'll-hls' && data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      this.emit('sourceError', data.details || 'network error'); // the node's endpoint: the page decides
      return;
    }
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
    this.generation += 1;
    this.kind = null;
    clearInterval(this.latencyTimer);
    this.latencyTimer = null;
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
      window.capturestreamPlayer = null;
    }
    if (this.flv) {
      this.flv.destroy(); // also detaches the media element
      this.flv = null;
      window.capturestreamFlv = null;
    }
    this.video.removeAttribute('src');
    this.video.load();
  }
}
