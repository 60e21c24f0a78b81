"""The pure parts of ``bench.glass_to_glass``: the burned-in clock (filter, encoder argv, reader), the pooled figures
and the refusal to run without a watch page. The bench itself needs Chromium and two live publishers for about two
minutes, so it is not run here (house rule: speed targets live in ``bench/``)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from bench import _clock
from bench import _g2g_report as report
from bench import glass_to_glass as g2g

FRAME = 1280 * 720 * 3


def _watch(subject: str, g2g_ms: list[int], *, latency: float | None = 1.0, failure: str | None = None) -> report.Watch:
    samples = [[0, 0, value, 0.0, 1280, value + 50, latency, 4] for value in g2g_ms]
    return report.Watch(subject, 0, samples=samples, failure=failure)


class TestClockFilter:
    def test_band_then_24_boxes_lsb_first_then_rebased_timestamps(self) -> None:
        """The filter stamps RTCTIME, draws the band, one box per bit at CHROMIUM.md's positions, then rebases."""
        script = _clock.filter_script(30)
        assert script.startswith("settb=AVTB,setpts=RTCTIME,drawbox=x=0:y=0:w=1280:h=76:color=black:t=fill,")
        assert script.endswith(",setpts=N/30/TB")
        assert script.count("drawbox=") == 25
        assert "drawbox=x=16:y=16:w=44:h=44:color=white:t=fill:enable='mod(floor(t*1000/pow(2\\,0))\\,2)'" in script
        assert "drawbox=x=1212:y=16:w=44:h=44:color=white:t=fill:enable='mod(floor(t*1000/pow(2\\,23))\\,2)'" in script

    def test_both_subjects_share_the_encoder_and_differ_only_in_output(self) -> None:
        """x264 veryfast zerolatency, GOP 1 s without scene cuts, 2500k + AAC 128k; RTMP or 1 s fMP4 HLS."""
        args = _clock.encoder_args(Path("/tmp/vf.txt"))
        joined = " ".join(args)
        assert "-f lavfi -i testsrc2=size=1280x720:rate=30" in joined
        assert "-filter_script:v /tmp/vf.txt" in joined
        assert "-preset veryfast -tune zerolatency" in joined
        assert "-g 30 -keyint_min 30 -sc_threshold 0 -b:v 2500k" in joined
        assert "-c:a aac -b:a 128k" in joined
        assert _clock.rtmp_output("rtmp://h/live/k") == ["-f", "flv", "rtmp://h/live/k"]
        hls = " ".join(_clock.hls_output(Path("/w/ref")))
        assert "-hls_time 1 -hls_list_size 6 -hls_segment_type fmp4" in hls
        assert "-hls_flags delete_segments+program_date_time+independent_segments" in hls
        assert hls.endswith("/w/ref/index.m3u8")

    @pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
    def test_rendered_frames_carry_the_wall_clock(self, tmp_path: Path) -> None:
        """ffmpeg renders three frames through the filter; each reads back as a time between before and after."""
        script = tmp_path / "clock.vf"
        script.write_text(_clock.filter_script(30))
        before = int(time.time() * 1000)
        frames = subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
             "-filter_script:v", str(script), "-frames:v", "3", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        after = int(time.time() * 1000)
        stamps = [_clock.read_clock(frames[i * FRAME : (i + 1) * FRAME], 1280) for i in range(3)]
        assert all(stamp is not None for stamp in stamps), stamps
        for stamp in stamps:
            assert _clock.age_ms(after, stamp) <= after - before

    def test_a_grey_box_is_unreadable_not_guessed(self) -> None:
        """A box that is neither black nor white makes the frame unreadable."""
        frame = bytearray(FRAME)
        assert _clock.read_clock(bytes(frame), 1280) == 0
        x, y = _clock.box_centres()[5]
        frame[(y * 1280 + x) * 3 : (y * 1280 + x) * 3 + 3] = b"\xff\xff\xff"
        assert _clock.read_clock(bytes(frame), 1280) == 1 << 5
        frame[(y * 1280 + x) * 3 : (y * 1280 + x) * 3 + 3] = b"\x80\x80\x80"
        assert _clock.read_clock(bytes(frame), 1280) is None

    def test_age_wraps_at_2_pow_24(self) -> None:
        """A stamp taken just before the wrap is still a small age just after it."""
        now = 5 * _clock.MODULUS + 100
        assert _clock.age_ms(now, _clock.MODULUS - 50) == 150
        assert _clock.age_ms(now, 40) == 60

    def test_page_reader_uses_the_same_layout(self) -> None:
        """The injected reader carries the Python layout (no unfilled placeholder) and reads at intrinsic size."""
        js = _clock.READER_JS
        assert "$" not in js
        assert f"const CENTRES = {[list(c) for c in _clock.box_centres()]}" in js
        assert "requestVideoFrameCallback" in js and "willReadFrequently: true" in js
        assert "const scale = v.videoWidth / W;" in js
        assert "window.capturestreamPlayer" in js


class TestReport:
    def test_rows_pool_runs_and_skip_failed_ones(self) -> None:
        """Samples of every successful run are pooled; a failed run adds nothing; hls.js figures come along."""
        watches = [
            _watch(report.CAPTURESTREAM, [1800, 1900, 2000]),
            _watch(report.CAPTURESTREAM, [9999], failure="no frame decoded"),
            _watch(report.REFERENCE, [1500, 1600, 1700], latency=None),
        ]
        ours = report.row_summary(watches, report.CAPTURESTREAM)
        assert ours["runs"] == 1 and ours["g2g"]["n"] == 3 and ours["g2g"]["p50"] == pytest.approx(1.9)
        assert ours["hls_latency"]["p50"] == 1.0 and ours["g2g_minus_hls_latency"]["p50"] == pytest.approx(0.9)
        assert ours["hls_playing_date"]["p50"] == pytest.approx(1.95)
        ref = report.row_summary(watches, report.REFERENCE)
        assert ref["hls_latency"] == {"n": 0}

    def test_each_row_has_its_target_and_ratio_to_the_reference(self) -> None:
        """HLS ≤ 2.0 s, LL-HLS ≤ 1.5 s, HTTP-FLV ≤ 0.5 s on the p50, each over the same reference; a miss is MISSED."""
        measured = {
            report.CAPTURESTREAM: [1800, 1900, 2000],
            report.LL_HLS: [1200, 1300, 1400],
            report.FLV: [500, 600, 700],
        }
        watches = [_watch(name, values) for name, values in measured.items()]
        watches.append(_watch(report.REFERENCE, [1500, 1600, 1700]))
        rows = [report.row_summary(watches, name) for name in (*report.MODES, report.REFERENCE)]
        verdict = report.report(rows)
        hls, ll, flv = (verdict["verdicts"][name] for name in report.MODES)
        assert hls["ratio"]["p50"] == pytest.approx(1.9 / 1.6) and hls["target_met"] is True
        assert ll["ratio"]["p50"] == pytest.approx(1.3 / 1.6) and ll["target_met"] is True
        assert flv["target_seconds"] == 0.5 and flv["target_met"] is False
        assert verdict["all_met"] is False
        table = report.table(rows, verdict)
        assert "p50 ≤ 2 s: met" in table and "p50 ≤ 1.5 s: met" in table and "p50 ≤ 0.5 s: MISSED" in table
        assert "CaptureStream HTTP-FLV (node → mpegts.js)" in table and "reference: ffmpeg HLS" in table

    def test_the_player_column_says_which_library_played(self) -> None:
        """A view records the library the page played with; the row names it."""
        view = _watch(report.FLV, [400, 420], latency=None)
        view.library = "mpegts.js"
        assert report.row_summary([view], report.FLV)["player"] == "mpegts.js"
        assert report.row_summary([], report.FLV)["player"] == "—"

    def test_nothing_measured_is_neither_met_nor_a_ratio(self) -> None:
        """With no samples the ratio is None and the target neither met nor missed (None), and not all met."""
        rows = [report.row_summary([], name) for name in (*report.MODES, report.REFERENCE)]
        verdict = report.report(rows)
        for name in report.MODES:
            assert verdict["verdicts"][name]["ratio"] == {"p50": None, "p95": None}
            assert verdict["verdicts"][name]["target_met"] is None
        assert verdict["all_met"] is False
        assert "p50 ≤ 0.5 s: —" in report.table(rows, verdict)

    def test_jumps_count_skips_and_steps_back_across_the_wrap(self) -> None:
        """Steady 33 ms steps and the 2^24 wrap are not jumps; a 500 ms skip and a step back are."""
        top = _clock.MODULUS
        assert g2g.count_jumps([top - 40, top - 7, 26, 59, 59]) == 0
        assert g2g.count_jumps([100, 133, 633, 600]) == 2


def test_refuses_to_run_without_a_watch_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No watch.html in the web root: exit status 2 and a message naming it, before anything starts."""
    assert g2g.main(["--web-root", str(tmp_path), "--results-dir", str(tmp_path)]) == 2
    assert "watch.html does not exist" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
