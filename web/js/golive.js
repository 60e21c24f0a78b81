// Browser go-live: capture a camera or the screen, record it with MediaRecorder in small WebM/Matroska chunks
// (H.264 + Opus where the browser can, CHROMIUM.md) and stream them over a WebSocket to the ingest node, which
// feeds the same pipeline as RTMP. Protocol: first `start_native_capture {config}` (the stream key travels only in
// this message), then binary chunks in order; `stop_capture` ends the broadcast at once. Closing the tab is a
// dropped connection: the stream shows "reconnecting" for the reconnect window, then ends.

import { Emitter } from './emitter.js';
import { api } from './api.js';
import { config } from './config.js';

const MAX_BUFFERED_BYTES = 8 * 1024 * 1024; // the socket is this far behind → the upload cannot keep up

export class BrowserBroadcast extends Emitter {
  constructor(preview) {
    super();
    this.preview = preview;
    this.stream = null;
    this.recorder = null;
    this.socket = null;
    this.startedAt = null;
    this.stopping = false;
  }

  async capture(source, settings) {
    const video = { width: { ideal: settings.width }, height: { ideal: settings.height }, frameRate: { ideal: settings.frameRate } };
    if (source === 'screen') {
      return navigator.mediaDevices.getDisplayMedia({ video, audio: settings.audio });
    }
    return navigator.mediaDevices.getUserMedia({ video, audio: settings.audio });
  }

  /** Start: validate settings with the API, capture, connect, authenticate, record. */
  async start({ source, width, height, frameRate, videoBitrateKbps, audio, streamKey }) {
    this.stopping = false;
    const settings = await api('/api/capture/config', {
      method: 'POST', body: { source, width, height, frameRate, videoBitrateKbps, audio },
    });
    const mimeType = settings.recommendedMimeTypes.find((type) => MediaRecorder.isTypeSupported(type));
    if (!mimeType) throw new Error('This browser cannot record video in a format CaptureStream accepts.');
    this.stream = await this.capture(source, settings);
    this.preview.srcObject = this.stream;
    const { captureWsUrl } = await config();
    if (!captureWsUrl) throw new Error('Browser go-live is not enabled on this server.');
    const socket = new WebSocket(captureWsUrl);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    await new Promise((resolve, reject) => {
      socket.addEventListener('open', resolve, { once: true });
      socket.addEventListener('error', () => reject(new Error('The ingest server cannot be reached.')), { once: true });
    });
    const started = new Promise((resolve, reject) => {
      const onMessage = (event) => {
        const message = JSON.parse(event.data);
        if (message.type === 'capture_started') resolve(message);
        else if (message.type === 'error') reject(new Error(message.message || message.code));
      };
      socket.addEventListener('message', onMessage);
      socket.addEventListener('close', () => reject(new Error('The ingest server closed the connection.')), { once: true });
    });
    socket.send(JSON.stringify({
      type: 'start_native_capture',
      config: { ...withoutAdvice(settings), mimeType, streamKey },
    }));
    const session = await started;
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(event.data);
      if (message.type === 'capture_stats') this.emit('stats', message);
      else if (message.type === 'error') this.emit('error', message.message || message.code);
    });
    socket.addEventListener('close', () => {
      if (!this.stopping) this.emit('error', 'The connection to the ingest server was lost.');
      this.cleanup();
    });
    const recorder = new MediaRecorder(this.stream, {
      mimeType,
      videoBitsPerSecond: settings.videoBitrateKbps * 1000,
      audioBitsPerSecond: settings.audio ? settings.audioBitrateKbps * 1000 : undefined,
      // Chromium ≥ 119: a keyframe every N ms, so the node can cut 1 s segments from the copied H.264
      // (without it the encoder decides, and segments — hence latency — follow its much longer GOP).
      videoKeyFrameIntervalDuration: settings.keyframeIntervalSeconds * 1000,
    });
    this.recorder = recorder;
    recorder.addEventListener('dataavailable', (event) => {
      if (!event.data.size || socket.readyState !== WebSocket.OPEN) return;
      socket.send(event.data);
      if (socket.bufferedAmount > MAX_BUFFERED_BYTES) this.emit('congested', socket.bufferedAmount);
    });
    recorder.addEventListener('stop', () => {
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: 'stop_capture' }));
      }
    });
    for (const track of this.stream.getTracks()) {
      track.addEventListener('ended', () => this.stop()); // the user stopped sharing from the browser UI
    }
    recorder.start(settings.timesliceMs);
    this.startedAt = Date.now();
    this.emit('live', session);
    return session;
  }

  /** Clean stop: the last chunk, then `stop_capture` (the broadcast ends at once), then close. */
  stop() {
    if (this.stopping) return;
    this.stopping = true;
    if (this.recorder && this.recorder.state !== 'inactive') this.recorder.stop();
    else if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: 'stop_capture' }));
    setTimeout(() => this.cleanup(), 1500);
  }

  cleanup() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.preview.srcObject = null;
    const wasLive = this.startedAt !== null;
    this.stream = null;
    this.recorder = null;
    this.socket = null;
    this.startedAt = null;
    if (wasLive) this.emit('stopped', null);
  }
}

function withoutAdvice(settings) {
  const { recommendedMimeTypes, ...rest } = settings;
  return rest;
}
