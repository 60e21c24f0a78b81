"""The burned-in clock of :mod:`bench.glass_to_glass`: the publisher's ffmpeg filter that stamps wall-clock time into
every frame, the encoder's argv, and the reader injected into the watch page.

Layout (``CHROMIUM.md``, "Snippets that worked"): a black band 1280x76 px at the top of the frame; in it 24 boxes
44x44 px at ``x = 16 + 52·i``, ``y = 16``, white when bit ``i`` (LSB first) of the capture time in ms mod 2^24 is 1.
``setpts=RTCTIME`` (time base 1 µs) makes ``t`` the epoch seconds at which the frame enters the filter;
``setpts=N/fps/TB`` then rebases the timestamps to 0 for the muxers.

Rules:
- The clock band is read at the video's **intrinsic** resolution: the reader draws the band's source rectangle
  (scaled by ``videoWidth / 1280``) onto its own 1280x76 canvas, whatever size the page displays the video at.
- A box whose centre pixel is neither clearly black (< 64) nor clearly white (> 192) makes the frame unreadable; it
  is counted, never guessed.
- Glass-to-glass of a frame = ``(Date.now() mod 2^24 − stamp) mod 2^24`` ms, taken when
  ``requestVideoFrameCallback`` reports the frame presented. Publisher and browser share this machine's clock.
- The page is not trusted to help: the reader finds ``document.querySelector('video')`` itself and only *reads*
  ``window.capturestreamPlayer`` (hls.js) when the page exposes it.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

BITS = 24
MODULUS = 1 << BITS
BAND_WIDTH, BAND_HEIGHT = 1280, 76
BOX_X0, BOX_PITCH, BOX_SIZE, BOX_Y = 16, 52, 44, 16
BLACK_BELOW, WHITE_ABOVE = 64, 192


def filter_script(fps: int) -> str:
    """The ``-filter_script:v`` text that burns the clock into each frame (CHROMIUM.md's, verbatim in effect)."""
    boxes = ",".join(
        f"drawbox=x={BOX_X0 + i * BOX_PITCH}:y={BOX_Y}:w={BOX_SIZE}:h={BOX_SIZE}:color=white:t=fill"
        f":enable='mod(floor(t*1000/pow(2\\,{i}))\\,2)'"
        for i in range(BITS)
    )
    band = f"drawbox=x=0:y=0:w={BAND_WIDTH}:h={BAND_HEIGHT}:color=black:t=fill"
    return f"settb=AVTB,setpts=RTCTIME,{band},{boxes},setpts=N/{fps}/TB"


def encoder_args(filter_file: Path, *, size: str = "1280x720", fps: int = 30, bitrate: str = "2500k") -> list[str]:
    """ffmpeg up to its output: lavfi testsrc2 + sine at real time, the clock, x264 zerolatency with a 1 s GOP, AAC.

    Both subjects get exactly these arguments; only the output (:func:`rtmp_output`, :func:`hls_output`) differs.
    """
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
        "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-filter_script:v", str(filter_file),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0", "-b:v", bitrate,
        "-c:a", "aac", "-b:a", "128k",
    ]  # fmt: skip


def rtmp_output(url: str) -> list[str]:
    """Publish over RTMP (CaptureStream's ingest)."""
    return ["-f", "flv", url]


def hls_output(folder: Path) -> list[str]:
    """ffmpeg's own HLS, 1 s fMP4 segments, into ``folder/index.m3u8`` (the reference)."""
    return [
        "-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_segment_type", "fmp4",
        "-hls_flags", "delete_segments+program_date_time+independent_segments",
        "-hls_segment_filename", str(folder / "seg%05d.m4s"), str(folder / "index.m3u8"),
    ]  # fmt: skip


def box_centres() -> list[tuple[int, int]]:
    """``(x, y)`` of each bit's box centre in the 1280x76 band, LSB first."""
    return [(BOX_X0 + i * BOX_PITCH + BOX_SIZE // 2, BOX_Y + BOX_SIZE // 2) for i in range(BITS)]


def read_clock(rgb: bytes, width: int) -> int | None:
    """The stamp in a packed RGB24 frame ``width`` px wide (1280 px layout), or None when a box is unreadable.

    The Python twin of the page reader, for tests and by-hand checks of recorded frames.
    """
    value = 0
    for bit, (x, y) in enumerate(box_centres()):
        offset = (y * width + x) * 3
        level = sum(rgb[offset : offset + 3]) / 3
        if level > WHITE_ABOVE:
            value |= 1 << bit
        elif level >= BLACK_BELOW:
            return None
    return value


def age_ms(now_ms: int, stamp: int) -> int:
    """Milliseconds from the stamp to ``now_ms`` (epoch ms), modulo 2^24 (the stamp's wrap, ~4.7 h)."""
    return (now_ms % MODULUS - stamp) % MODULUS


READER_JS = Template("""
(() => {
  if (window.__g2g) return;
  const BITS = $bits, MOD = $modulus, W = $band_width, H = $band_height;
  const CENTRES = $centres, BLACK = $black, WHITE = $white;
  const state = window.__g2g = {samples: [], unreadable: 0, errors: [], attached: 0};
  let canvas = null, ctx = null;
  function read(v) {
    if (!ctx) {
      canvas = document.createElement('canvas'); canvas.width = W; canvas.height = H;
      ctx = canvas.getContext('2d', {willReadFrequently: true});
    }
    const scale = v.videoWidth / W;  // source rectangle in intrinsic pixels, whatever the displayed size
    ctx.drawImage(v, 0, 0, W * scale, H * scale, 0, 0, W, H);
    const d = ctx.getImageData(0, 0, W, H).data;
    let value = 0;
    for (let i = 0; i < BITS; i++) {
      const o = (CENTRES[i][1] * W + CENTRES[i][0]) * 4, level = (d[o] + d[o + 1] + d[o + 2]) / 3;
      if (level > WHITE) value += 2 ** i; else if (level >= BLACK) return null;
    }
    return value;
  }
  function player() {
    const p = window.capturestreamPlayer;
    if (!p) return [null, null];
    const date = p.playingDate;
    return [date ? Date.now() - date.getTime() : null, typeof p.latency === 'number' ? p.latency : null];
  }
  function attach(v) {
    state.attached++;
    const onFrame = (now, meta) => {
      if (document.querySelector('video') !== v) return;  // the page replaced its video element
      const wall = Date.now();
      let value = null;
      try { value = v.videoWidth ? read(v) : null; } catch (e) { state.errors.push(String(e)); }
      if (value === null) state.unreadable++;
      else state.samples.push([wall, value, ((wall % MOD) - value + MOD) % MOD, meta.mediaTime,
                               v.videoWidth, ...player(), wall - (performance.timeOrigin + meta.expectedDisplayTime)]);
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }
  let current = null;
  setInterval(() => {
    const v = document.querySelector('video');
    if (v && v !== current) { current = v; attach(v); }
  }, 50);
})();
""").substitute(
    bits=BITS,
    modulus=MODULUS,
    band_width=BAND_WIDTH,
    band_height=BAND_HEIGHT,
    centres=[list(c) for c in box_centres()],
    black=BLACK_BELOW,
    white=WHITE_ABOVE,
)
"""Injected with ``add_init_script``: attaches a ``requestVideoFrameCallback`` reader to the page's video element
and appends ``[Date.now(), stamp, g2g ms, mediaTime, videoWidth, Date.now() − hls.playingDate ms, hls.latency s,
Date.now() − the frame's expected display time ms]`` to ``window.__g2g.samples`` for every readable presented frame
(the last one is how late the callback ran: a busy renderer inflates g2g by that much)."""

SAMPLE_FIELDS = (
    "wall_ms",
    "stamp",
    "g2g_ms",
    "media_time",
    "video_width",
    "hls_playing_date_ms",
    "hls_latency_s",
    "callback_delay_ms",
)
