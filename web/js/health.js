// Live stream health for the studio: small time-series charts (uPlot) of ingest bitrate, frame rate and keyframe
// interval, from what the ingest node reports through the catalog, and warnings a streamer can act on.

/* global uPlot */

const WINDOW_SECONDS = 300; // the charts show the last five minutes
export const KEYFRAME_LIMIT = 2; // seconds: above this, segments get long and latency grows
const BITRATE_DROP = 0.6; // latest sample below 60 % of the recent median → warn

function themeColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#aaa';
}

function makeChart(element, label, colour) {
  const axis = { stroke: themeColour('--text-muted'), grid: { stroke: themeColour('--border'), width: 1 }, ticks: { show: false } };
  const options = {
    width: Math.max(element.clientWidth, 200),
    height: 110,
    legend: { show: false },
    cursor: { show: true, drag: { x: false, y: false } },
    scales: {
      x: {
        time: true,
        range: (_u, _min, max) => {
          const end = Number.isFinite(max) && max > 0 ? max : Date.now() / 1000;
          return [end - WINDOW_SECONDS, end];
        },
      },
      y: { range: (_u, min, max) => [0, Math.max(max * 1.15, min + 1)] },
    },
    axes: [{ ...axis, space: 60 }, { ...axis, size: 44 }],
    series: [{}, { label, stroke: colour, width: 2, fill: `${colour}22`, points: { size: 4 } }],
  };
  const chart = new uPlot(options, [[], []], element);
  new ResizeObserver(() => chart.setSize({ width: Math.max(element.clientWidth, 200), height: 110 })).observe(element);
  return chart;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
}

/** Plain-language warnings from the newest samples ({t, bitrateKbps, frameRate, keyframeInterval}). */
export function warningsFor(samples) {
  const warnings = [];
  const last = samples[samples.length - 1];
  if (!last) return warnings;
  if (last.keyframeInterval > KEYFRAME_LIMIT) {
    warnings.push(`Keyframe interval is ${last.keyframeInterval.toFixed(1)} s. Set OBS → Output → Keyframe Interval to 1 s: `
      + 'viewers wait longer and segments get uneven above 2 s.');
  }
  const recent = samples.slice(-13, -1).map((s) => s.bitrateKbps).filter((v) => v > 0);
  if (recent.length >= 3 && last.bitrateKbps < BITRATE_DROP * median(recent)) {
    warnings.push(`Bitrate dropped to ${Math.round(last.bitrateKbps)} Kbps (from about ${Math.round(median(recent))}). `
      + 'Your upload may be congested: lower the bitrate in OBS or close other uploads.');
  }
  const fps = samples.slice(-6).map((s) => s.frameRate).filter((v) => v > 0);
  if (fps.length >= 3 && Math.max(...fps) - Math.min(...fps) > 5) {
    warnings.push('Frame rate is unstable: your encoder may be overloaded. Try a faster x264 preset or a hardware encoder.');
  }
  return warnings;
}

export class HealthCharts {
  constructor() {
    this.charts = null;
  }

  ensure() {
    if (this.charts || !window.uPlot) return;
    this.charts = {
      bitrate: makeChart(document.getElementById('chart-bitrate'), 'Kbps', '#3ea6ff'),
      fps: makeChart(document.getElementById('chart-fps'), 'fps', '#3ccf7a'),
      keyframe: makeChart(document.getElementById('chart-keyframe'), 's', '#ffb547'),
    };
  }

  /** Draw samples ({t: ISO or epoch s, bitrateKbps, frameRate, keyframeInterval}); returns the warnings shown. */
  update(samples) {
    this.ensure();
    const points = samples
      .map((s) => ({ ...s, x: typeof s.t === 'number' ? s.t : Date.parse(s.t) / 1000 }))
      .filter((s) => Number.isFinite(s.x))
      .sort((a, b) => a.x - b.x);
    const newest = points.length ? points[points.length - 1].x : 0;
    const shown = points.filter((s) => s.x > newest - WINDOW_SECONDS);
    const xs = shown.map((s) => s.x);
    const column = (key) => shown.map((s) => (s[key] == null ? null : s[key]));
    if (this.charts) {
      this.charts.bitrate.setData([xs, column('bitrateKbps')]);
      this.charts.fps.setData([xs, column('frameRate')]);
      this.charts.keyframe.setData([xs, column('keyframeInterval')]);
    }
    const last = shown[shown.length - 1];
    const text = (value, digits, unit) => (value == null ? '—' : `${value.toFixed(digits)} ${unit}`);
    document.getElementById('value-bitrate').textContent = text(last && last.bitrateKbps, 0, 'Kbps');
    document.getElementById('value-fps').textContent = text(last && last.frameRate, 1, 'fps');
    document.getElementById('value-keyframe').textContent = text(last && last.keyframeInterval, 1, 's');
    return warningsFor(shown);
  }
}
