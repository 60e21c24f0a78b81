// The event plumbing the page's long-lived objects share (the WebSocket client, the player, browser go-live):
// `on(type, handler)` hands the handler the event's detail; `emit(type, detail)` dispatches one.

export class Emitter extends EventTarget {
  on(type, handler) {
    this.addEventListener(type, (event) => handler(event.detail));
    return this;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
