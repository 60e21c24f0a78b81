// The one WebSocket client of the web app: connects to the API Gateway-like gateway, reconnects with backoff,
// sends heartbeats, re-registers and re-subscribes after a reconnect, and dispatches server messages by `type`.
// The `type` strings below mirror capturestream.messages (a test keeps them equal).

import { Emitter } from './emitter.js';
import { config } from './config.js';
import { token, viewerId } from './session.js';

export const CLIENT_MESSAGE_TYPES = ['register', 'getStreams', 'subscribe', 'unsubscribe', 'chat', 'heartbeat'];
export const SERVER_MESSAGE_TYPES = [
  'streamList', 'streamLive', 'streamEnded', 'viewerCount', 'thumbnail', 'chat', 'error',
];

const HEARTBEAT_MS = 30_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;

/**
 * A live connection. Events: `open`, `close`, `state` (detail: 'connecting' | 'open' | 'reconnecting'),
 * and one event per server message type (detail: the message).
 */
export class LiveSocket extends Emitter {
  constructor({ role = 'viewer', lobby = false } = {}) {
    super();
    this.role = role;
    this.lobby = lobby; // register in the lobby: receive streamLive/streamEnded/thumbnail and ask for streamList
    this.subscriptions = new Set();
    this.socket = null;
    this.attempt = 0;
    this.closed = false;
    this.heartbeat = null;
    this.retryTimer = null;
    this.state = 'connecting';
  }

  async connect() {
    const { wsUrl } = await config();
    if (this.closed) return;
    const url = new URL(wsUrl);
    url.searchParams.set('viewer', viewerId());
    const bearer = token();
    if (bearer) url.searchParams.set('token', bearer);
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.attempt = 0;
      this.setState('open');
      if (this.lobby) {
        this.send({ type: 'register', role: this.role });
        this.send({ type: 'getStreams' });
      }
      for (const streamId of this.subscriptions) this.send({ type: 'subscribe', streamId });
      this.heartbeat = setInterval(() => this.send({ type: 'heartbeat' }), HEARTBEAT_MS);
      this.emit('open', null);
    });
    socket.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && SERVER_MESSAGE_TYPES.includes(message.type)) this.emit(message.type, message);
    });
    socket.addEventListener('close', () => {
      clearInterval(this.heartbeat);
      if (this.socket !== socket) return;
      this.socket = null;
      this.emit('close', null);
      if (!this.closed) this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    this.setState('reconnecting');
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter: a restarted gateway is not stampeded
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  /** Send one message now if connected; returns whether it was sent. */
  send(message) {
    if (!CLIENT_MESSAGE_TYPES.includes(message.type)) throw new Error(`unknown message type ${message.type}`);
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  subscribe(streamId) {
    if (this.subscriptions.has(streamId)) return;
    this.subscriptions.add(streamId);
    this.send({ type: 'subscribe', streamId });
  }

  /** Send `subscribe` again (idempotent on the server), e.g. once a stream that did not exist goes live. */
  resubscribe(streamId) {
    this.subscriptions.add(streamId);
    this.send({ type: 'subscribe', streamId });
  }

  unsubscribe(streamId) {
    if (!this.subscriptions.delete(streamId)) return;
    this.send({ type: 'unsubscribe', streamId });
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    if (this.socket) this.socket.close(1000);
  }
}
