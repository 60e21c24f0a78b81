// The watch page's latency switch: Standard (HLS through S3 and the CDN, the default), Low latency (LL-HLS from the
// ingest node) and Ultra-low (HTTP-FLV from the node). The viewer's choice is remembered (localStorage); the node's
// URLs come from `/config.json`'s `playbackUrl`, and without one the switch stays hidden.

import { Emitter } from './emitter.js';

export const MODES = { standard: 'Standard', 'll-hls': 'Low latency (LL-HLS)', flv: 'Ultra-low (HTTP-FLV)' };
const KEY = 'capturestream.latencyMode';

/** The mode this viewer chose last ('standard' when none, or an unknown one was stored). */
export function storedMode() {
  const mode = localStorage.getItem(KEY);
  return Object.hasOwn(MODES, mode || '') ? mode : 'standard';
}

/** The node's URL for a low-latency mode of stream `playbackId`; null for standard. */
export function nodeSource(mode, playbackUrl, playbackId) {
  const id = encodeURIComponent(playbackId);
  if (mode === 'flv') return `${playbackUrl}/live/${id}.flv`;
  if (mode === 'll-hls') return `${playbackUrl}/live/${id}/ll.m3u8`;
  return null;
}

/** The radio group (a fieldset of `input[type=radio]` whose values are MODES keys); emits `change` (mode). */
export class LatencySwitch extends Emitter {
  constructor(fieldset) {
    super();
    this.fieldset = fieldset;
    this.inputs = [...fieldset.querySelectorAll('input[type="radio"]')];
    for (const input of this.inputs) {
      input.addEventListener('change', () => {
        if (!input.checked) return;
        localStorage.setItem(KEY, input.value);
        this.emit('change', input.value);
      });
    }
  }

  show(visible) {
    this.fieldset.hidden = !visible;
  }

  /** Show `mode` as the one playing, without remembering it (a fallback is not the viewer's choice). */
  select(mode) {
    for (const input of this.inputs) input.checked = input.value === mode;
    this.fieldset.dataset.mode = mode;
  }
}
