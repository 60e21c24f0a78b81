// The chat panel: live (send over the WebSocket, receive, history on join, rate-limit countdown) and replay
// (a recording's chat shown in sync with the video's currentTime). Messages are text nodes only.

import { api } from './api.js';
import { h } from './dom.js';
import { nameColour } from './format.js';

const MAX_SHOWN = 300;
const MAX_CHARS = 500;
const REPLAY_WINDOW = 60; // seconds of chat fetched at a time during replay

function timeLabel(ts) {
  return new Date(ts).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

function mediaLabel(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export class ChatPanel {
  constructor(root) {
    this.root = root;
    this.log = root.querySelector('.chat-log');
    this.form = root.querySelector('.chat-form');
    this.input = root.querySelector('textarea');
    this.sendButton = root.querySelector('.chat-form button');
    this.status = root.querySelector('.chat-status');
    this.newPill = root.querySelector('.chat-new');
    this.counter = root.querySelector('.chat-count');
    this.seen = new Set();
    this.cooldownUntil = 0;
    this.cooldownTimer = null;
    this.log.addEventListener('scroll', () => { if (this.atBottom()) this.newPill.hidden = true; });
    this.newPill.addEventListener('click', () => this.scrollToBottom());
  }

  atBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 24;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
    this.newPill.hidden = true;
  }

  /** Append messages ({id, user, text, ts, mediaTime?}); keeps the reader's position unless at the bottom. */
  add(messages, { replay = false } = {}) {
    const stick = this.atBottom();
    let added = 0;
    for (const message of messages) {
      if (this.seen.has(message.id)) continue;
      this.seen.add(message.id);
      const user = h('span', { class: 'chat-user' }, message.user);
      user.style.color = nameColour(message.user);
      const when = replay ? mediaLabel(message.mediaTime) : timeLabel(message.ts);
      this.log.append(h('li', { title: new Date(message.ts).toLocaleString() },
        h('span', { class: 'chat-time' }, when), user, h('span', { class: 'chat-text' }, message.text)));
      added += 1;
    }
    while (this.log.children.length > MAX_SHOWN) this.log.firstElementChild.remove();
    if (!added) return;
    if (stick) this.scrollToBottom();
    else this.newPill.hidden = false;
  }

  system(text) {
    this.log.append(h('li', { class: 'chat-system' }, text));
    if (this.atBottom()) this.scrollToBottom();
  }

  clear() {
    this.log.replaceChildren();
    this.seen.clear();
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  /** Live mode: wire the form to `send(text)`, which returns whether the socket took it. */
  enableSending(send) {
    this.form.hidden = false;
    const updateCounter = () => {
      const left = MAX_CHARS - this.input.value.length;
      this.counter.textContent = left < 100 ? `${left} characters left` : '';
    };
    this.input.maxLength = MAX_CHARS;
    this.input.addEventListener('input', updateCounter);
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = this.input.value.trim();
      if (!text || Date.now() < this.cooldownUntil) return;
      if (!send(text)) {
        this.setStatus('Not connected — your message was not sent. Reconnecting…');
        return;
      }
      this.input.value = '';
      updateCounter();
      this.setStatus('');
    });
  }

  disableSending(reason) {
    this.form.hidden = true;
    this.setStatus(reason);
  }

  /** Show a rate-limit countdown on the send button. */
  cooldown(seconds) {
    this.cooldownUntil = Date.now() + seconds * 1000;
    this.sendButton.disabled = true;
    clearInterval(this.cooldownTimer);
    const tick = () => {
      const left = Math.ceil((this.cooldownUntil - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(this.cooldownTimer);
        this.sendButton.disabled = false;
        this.sendButton.textContent = 'Send';
        this.setStatus('');
        return;
      }
      this.sendButton.textContent = `Wait ${left}s`;
      this.setStatus(`You are sending messages too fast. Try again in ${left} s.`);
    };
    tick();
    this.cooldownTimer = setInterval(tick, 250);
  }
}

/** A broadcast's chat between media times (`params`: session, from, to, limit), following the cursor for at most
 * `maxPages` pages; oldest first. */
async function chatMessages(streamId, params, maxPages = Infinity) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const query = new URLSearchParams(params);
    if (cursor) query.set('cursor', cursor);
    const result = await api(`/api/streams/${encodeURIComponent(streamId)}/chat?${query}`);
    items.push(...result.items);
    cursor = result.nextCursor;
    if (!cursor) break;
  }
  return items;
}

/** Recent chat of the live broadcast (the last ten minutes, at most 100 messages), oldest first. */
export async function recentChat(streamId, sessionId, startedAt) {
  const elapsed = startedAt ? (Date.now() - Date.parse(startedAt)) / 1000 : 0;
  const from = Math.max(0, elapsed - 600);
  const items = await chatMessages(streamId, { session: sessionId, from: from.toFixed(3), limit: '100' }, 5);
  return items.slice(-100);
}

/** Replays a recording's chat in sync with a video element's currentTime. */
export class ChatReplay {
  constructor(panel, video, { streamId, sessionId, duration }) {
    this.panel = panel;
    this.video = video;
    this.streamId = streamId;
    this.sessionId = sessionId;
    this.duration = duration;
    this.messages = []; // sorted by mediaTime
    this.loaded = new Map(); // window index → Promise
    this.shownUpTo = -1; // media time rendered so far
    video.addEventListener('timeupdate', () => this.sync());
    video.addEventListener('seeked', () => this.sync(true));
    // Chat is stamped with wall-clock time since the broadcast started; a publisher that ran slower than real time
    // leaves messages past the last frame. Show them when the video ends rather than never.
    video.addEventListener('ended', () => this.sync(false, Infinity));
  }

  window(index) {
    if (index < 0 || (this.duration && index * REPLAY_WINDOW > this.duration)) return Promise.resolve();
    if (!this.loaded.has(index)) this.loaded.set(index, this.fetchWindow(index));
    return this.loaded.get(index);
  }

  async fetchWindow(index) {
    const found = await chatMessages(this.streamId, {
      session: this.sessionId, from: String(index * REPLAY_WINDOW), to: String((index + 1) * REPLAY_WINDOW), limit: '500',
    });
    this.messages = this.messages.concat(found).sort((a, b) => a.mediaTime - b.mediaTime);
    this.sync(true);
  }

  sync(reset = false, t = this.video.currentTime) {
    const index = Math.floor(Math.min(t, this.video.currentTime) / REPLAY_WINDOW);
    this.window(index);
    this.window(index + 1);
    if (reset || t < this.shownUpTo) {
      this.panel.clear();
      const past = this.messages.filter((m) => m.mediaTime <= t);
      this.panel.add(past.slice(-100), { replay: true });
    } else {
      this.panel.add(this.messages.filter((m) => m.mediaTime > this.shownUpTo && m.mediaTime <= t), { replay: true });
    }
    this.shownUpTo = t;
    this.panel.setStatus(this.messages.length ? '' : 'Chat replay: no messages yet at this point.');
  }
}
