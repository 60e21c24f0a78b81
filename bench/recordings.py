"""Benchmark: the recording builder (ended broadcast → faststart MP4 in S3) and live thumbnail freshness.

Part 1, recording build time and peak memory, for broadcasts of 10 min, 1 h and 4 h (``--sizes``):
    Inputs (:mod:`bench._recording_inputs`): an 8 s 640×360 30 fps H.264 (B-frames, 1 s GOP) + AAC 48 kHz clip
    encoded with ffmpeg lavfi at ~480 kb/s, fed through ``mediakit.cmaf.Segmenter`` (the ingest node's muxer: 1 s
    segments, 0.25 s parts) in loops with shifted timestamps: 600 / 3,600 / 14,400 real segments (30 video + ~47
    audio samples, 4 fragments each). Bitrate scaled, sample counts real. For each size a fresh moto child
    (``python -m devstack.moto_process``) gets the media bucket and the table of template.yaml (no EventBridge
    rules: nothing fires while 14,400 segments are stored), the init, every segment with the ingest node's
    object metadata, and ``ended.json``; the same files are written to a local folder.

    Ours: the real RecordingFunction handler in a child process (``python -m bench.recordings _child``) with the
    function's template environment (16 MiB parts, 16 reads in flight), invoked once with the SQS-wrapped
    EventBridge event of ``ended.json``. The child times the handler call alone (interpreter start, imports and
    client creation are outside the clock), counts every S3 request and byte through botocore's event hooks, and
    times the build's steps by wrapping the functions ``build.py`` calls (no product code changes). Peak RSS is
    the child's ``VmHWM`` as the call returns; the image step's ffmpeg runs go through :data:`RUSAGE_SCRIPT`, so
    their own peak is reported beside it. The child's ``TMPDIR`` is a private folder sampled every 0.2 s.

    Reference, same invocation, same init + segments from local disk: ``ffmpeg -f mp4 -i concatf:<list> -c copy
    -movflags +faststart out.mp4`` (``concatf``: the concat protocol reading its file list, since 14,400 names
    do not fit one argv string), under :data:`RUSAGE_SCRIPT` (wall, CPU, peak RSS, bytes written); faststart
    rewrites the whole file in place to move ``moov`` first, so it needs the MP4's size of local disk (Lambda's
    ``/tmp``: 10 GB at most).

    Both outputs are verified: ``moov`` before ``mdat`` (box headers read with ranged GETs / seeks), ffprobe
    duration within 0.5 s of the segments' total, and exactly the video and audio samples fed (ffprobe
    ``nb_frames``). A failed verification or build fails the bench (exit 1). Lambda limits, judged on the longest
    broadcast: build ≤ the function's timeout (900 s), peak memory (handler process + its largest ffmpeg) ≤ half
    of its MemorySize (2048 MB), and the MP4 never in ``/tmp`` (peak ``TMPDIR`` use below the MP4's size).

Part 2, live thumbnail freshness through a real ``capturestream up --ports auto``:
    N ffmpeg publishers (``-re`` lavfi, 1 s GOP, as ``tests/e2e/test_ingest.ffmpeg_args``; default 3 × 40 s,
    starts spread over 1 s) and one lobby WebSocket viewer (``register``). A thread per stream lists its
    ``live/<playback_id>/`` 20-50 ms apart (jittered); for each sampled segment (sequence % 5 == 0, the
    ThumbnailRule's sample) the figure is from the first listing that shows it to the arrival of the
    ``thumbnail`` message naming it at the viewer; plus the
    interval between consecutive thumbnails of a stream, and ffmpeg's own time inside ThumbnailFunction (from
    ``up``'s JSON log). Reference, same invocation, after ``up`` has stopped: the thumbnail command alone
    (``mediakit.ffmpeg_args.live_thumbnail_args``, init + segment on stdin as the function runs it) on the same
    bytes from local disk: the floor of the path. Target (BRIEF §6): ≤ 1 s after its segment lands, every ≤ 10 s.

Usage: ``python -m bench.recordings [--sizes 10m,1h,4h] [--streams N] [--seconds S] [--quick] [--results-dir DIR]``
(``--quick``: 20 s and 60 s broadcasts, 1 stream × 15 s). Exit status 0 when everything was measured and
verified, whether or not a target was met; 1 when a build, a remux or a verification failed, or thumbnails
never arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._stats import (
    add_common_arguments,
    environment,
    environment_line,
    markdown_table,
    ms,
    shown,
    summarize,
    write_results,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTION_ID = "RecordingFunction"
DEFAULT_SIZES = "10m,1h,4h"
QUICK_SIZES = "20s,60s"
#: "Well under" the function's MemorySize: at most this share of it.
MEMORY_SHARE = 0.5
DURATION_TOLERANCE = 0.5
MONITOR_PERIOD = 0.2
MOTO_READY_TIMEOUT = 30.0
REFERENCE_TIMEOUT = 900.0
THUMB_LAG_TARGET = 1.0
THUMB_INTERVAL_TARGET = 10.0
THUMB_EVERY = 5
LIST_JITTER = (0.020, 0.050)
UP_READY_TIMEOUT = 60.0
TAIL_SECONDS = 3.0
CHILD_MARK = "BENCH-CHILD "
_FAKE_AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
_PLAYBACK = "benchrecording01"
_CHANNEL = "benchchannel01"
_STARTED = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
MB = 1_000_000


def parse_size(text: str) -> tuple[str, float]:
    """``"10m"`` → ``("10 min", 600)``; ``s``, ``m``, ``h`` suffixes or plain seconds.

    Raises:
        ValueError: not a positive duration.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"not a duration: {text!r} (use 20s, 10m, 1h)")
    value, unit = float(match[1]), match[2] or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
    label = {"s": f"{value:g} s", "m": f"{value:g} min", "h": f"{value:g} h"}[unit]
    return label, seconds


def _status_kb(field_name: str, pid: int | str = "self") -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _tree_bytes(folder: Path) -> int:
    """Bytes of every file below ``folder`` (files may vanish while walking)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


#: Runs a command and appends its resource use as one JSON line to a file (argv: report file, command...).
#: A process's ``ru_maxrss`` keeps the high-water mark of the memory it had *before* ``exec``: a child forked from
#: a 100 MB Python would report at least 100 MB whatever it execs. This wrapper is a bare ``python -S -I``
#: (~7 MB), so the command's own peak comes through; ``/proc/<pid>/io`` is read before the exited child is reaped.
RUSAGE_SCRIPT = """
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
wall = time.perf_counter() - started
try:
    io = dict(line.split(": ") for line in open(f"/proc/{pid}/io").read().splitlines())
except OSError:
    io = {}
_, status, usage = os.wait4(pid, 0)
with open(report, "a") as out:
    out.write(json.dumps({"argv0": argv[0], "wall_seconds": wall, "maxrss_kb": usage.ru_maxrss,
                          "cpu_seconds": usage.ru_utime + usage.ru_stime, "wchar": int(io.get("wchar", 0)),
                          "rchar": int(io.get("rchar", 0))}) + "\\n")
code = os.waitstatus_to_exitcode(status)
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def rusage_argv(report: Path, argv: list[str]) -> list[str]:
    """``argv`` run under :data:`RUSAGE_SCRIPT`, its resource use appended to ``report``."""
    return [sys.executable, "-S", "-I", "-c", RUSAGE_SCRIPT, str(report), *argv]


def read_rusage(report: Path) -> list[dict[str, Any]]:
    """Every line :data:`RUSAGE_SCRIPT` appended to ``report``."""
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


class _RusageSubprocess:
    """Stands in for the ``subprocess`` module inside the child's ``images`` module: ``run`` goes through
    :data:`RUSAGE_SCRIPT` (adds ~20 ms of Python start per ffmpeg run); everything else is the real module."""

    def __init__(self, report: Path) -> None:
        self._report = report

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def run(self, argv: list[str], *args: Any, **kwargs: Any) -> Any:
        return subprocess.run(rusage_argv(self._report, list(argv)), *args, **kwargs)


# ================================================================================================ moto child


class Moto:
    """A bare moto server child (``python -m devstack.moto_process``), as ``up`` and the other benches run it."""

    def __init__(self, tmp: Path) -> None:
        self.log = (tmp / "moto.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack.moto_process", "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, "TMPDIR": str(tmp)},
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], MOTO_READY_TIMEOUT)
        line = self.process.stdout.readline() if readable else b""
        try:
            self.endpoint = f"http://127.0.0.1:{json.loads(line)['port']}"
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise RuntimeError(f"moto did not start within {MOTO_READY_TIMEOUT:.0f} s (got {line[:80]!r})") from None

    def cpu_seconds(self) -> float:
        """CPU time moto has used so far (user + system, from ``/proc/<pid>/stat``)."""
        text = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()


def _clients(endpoint: str) -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=16, retries={"max_attempts": 3})
    kwargs = {"endpoint_url": endpoint, "region_name": "us-east-1", "config": config,
              "aws_access_key_id": "test", "aws_secret_access_key": "test"}  # fmt: skip
    return boto3.client("s3", **kwargs), boto3.client("dynamodb", **kwargs)


# ================================================================================================ part 1: builds


@dataclass
class Verification:
    """What one output MP4 looks like."""

    ok: bool = False
    boxes: list[str] = field(default_factory=list)
    duration: float | None = None
    video_frames: int | None = None
    audio_frames: int | None = None
    error: str | None = None


@dataclass
class SizeResult:
    """One broadcast length: inputs, ours, the reference, both verifications."""

    label: str
    seconds: float
    segments: int = 0
    input_bytes: int = 0
    video_samples: int = 0
    audio_samples: int = 0
    generate_seconds: float = 0.0
    upload_seconds: float = 0.0
    ours: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    ours_verified: Verification = field(default_factory=Verification)
    reference_verified: Verification = field(default_factory=Verification)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A build, a remux or a verification failed."""
        return bool(self.errors) or not (self.ours_verified.ok and self.reference_verified.ok)


def _box_kinds(read: Callable[[int, int], bytes], size: int, limit: int = 8) -> list[str]:
    """Top-level box types of a file, from its box headers alone (ISO/IEC 14496-12 §4.2)."""
    kinds: list[str] = []
    pos = 0
    while pos < size and len(kinds) < limit:
        head = read(pos, min(16, size - pos))
        if len(head) < 8:
            raise ValueError(f"truncated box header at {pos}")
        box_size, kind = int.from_bytes(head[:4], "big"), head[4:8].decode("latin-1")
        if box_size == 1:
            box_size = int.from_bytes(head[8:16], "big")
        elif box_size == 0:
            box_size = size - pos
        if box_size < 8:
            raise ValueError(f"box {kind!r} at {pos} has size {box_size}")
        kinds.append(kind)
        pos += box_size
    return kinds


def _ffprobe(target: str) -> dict[str, Any]:
    ffprobe = shutil.which("ffprobe") or "ffprobe"
    done = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "format=duration:stream=codec_type,nb_frames", "-of", "json",
         target], capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def verify(read: Callable[[int, int], bytes], size: int, probe_target: str, result: SizeResult) -> Verification:
    """``moov`` before ``mdat``, duration within :data:`DURATION_TOLERANCE`, every sample fed present."""
    check = Verification()
    try:
        check.boxes = _box_kinds(read, size)
        probe = _ffprobe(probe_target)
        check.duration = float(probe["format"]["duration"])
        frames = {s["codec_type"]: int(s.get("nb_frames", 0)) for s in probe["streams"]}
        check.video_frames, check.audio_frames = frames.get("video"), frames.get("audio")
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
        check.error = f"{type(error).__name__}: {error}"
        return check
    problems = []
    if not ("moov" in check.boxes and "mdat" in check.boxes and check.boxes.index("moov") < check.boxes.index("mdat")):
        problems.append(f"boxes {check.boxes}: moov not before mdat")
    if abs(check.duration - result.seconds) > DURATION_TOLERANCE:
        problems.append(f"duration {check.duration:.3f} s, input {result.seconds:.3f} s")
    if (check.video_frames, check.audio_frames) != (result.video_samples, result.audio_samples):
        problems.append(
            f"{check.video_frames}/{check.audio_frames} video/audio samples, fed "
            f"{result.video_samples}/{result.audio_samples}"
        )
    check.error = "; ".join(problems) or None
    check.ok = not problems
    return check


def _function_env(endpoint: str, tmp: Path) -> tuple[dict[str, str], Any]:
    """The child's environment: the function's template variables, the endpoint, fake credentials, its TMPDIR."""
    from devstack.template_spec import load_stack_spec

    spec = load_stack_spec().functions[FUNCTION_ID]
    variables = {name: str(value) for name, value in spec.environment.items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPTURESTREAM_", "AWS_"))}
    env.update(variables)
    env.update(_FAKE_AWS)
    env.update({"AWS_ENDPOINT_URL": endpoint, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"})
    return env, spec


def _monitor(pid: int, tmp: Path, stop: threading.Event, peaks: dict[str, int]) -> None:
    """Sample the child's RSS and its TMPDIR's size until ``stop``."""
    while not stop.is_set():
        rss = _status_kb("VmRSS", pid)
        if rss is not None:
            peaks["rss_kb"] = max(peaks.get("rss_kb", 0), rss)
        peaks["tmp_bytes"] = max(peaks.get("tmp_bytes", 0), _tree_bytes(tmp))
        stop.wait(MONITOR_PERIOD)


def run_ours(endpoint: str, work: Path, event: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The real handler once, in a child process; its report plus what the parent saw (rusage, TMPDIR)."""
    from devstack.lambda_runtime import resolve_handler_path

    child_tmp = work / "function-tmp"
    child_tmp.mkdir()
    env, spec = _function_env(endpoint, child_tmp)
    module, attribute = resolve_handler_path(spec.code_uri, spec.handler)
    config = work / "child.json"
    config.write_text(
        json.dumps({"module": module, "attribute": attribute, "event": event, "rusage": str(work / "ffmpeg.rusage")})
    )
    stderr_path = work / "child.stderr"
    with stderr_path.open("wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.recordings", "_child", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    peaks: dict[str, int] = {}
    stop = threading.Event()
    monitor = threading.Thread(target=_monitor, args=(process.pid, child_tmp, stop, peaks), daemon=True)
    monitor.start()
    killer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
        stop.set()
        monitor.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    process.stdout.close()
    lines = [line for line in output.splitlines() if line.startswith(CHILD_MARK)]
    report: dict[str, Any] = json.loads(lines[-1][len(CHILD_MARK) :]) if lines else {}
    report.setdefault("hwm_mb", None)
    report["maxrss_mb"] = report["hwm_mb"]  # the child's own high-water mark (VmHWM), read as it finished
    report.update(
        exit_code=process.returncode,
        process_seconds=elapsed,
        wait4_maxrss_mb=usage.ru_maxrss * 1024 / MB,  # includes the bench's own memory at fork: not used
        sampled_rss_mb=peaks.get("rss_kb", 0) * 1024 / MB,
        tmp_peak_bytes=peaks.get("tmp_bytes", 0),
        process_cpu_seconds=usage.ru_utime + usage.ru_stime,
        memory_limit_mb=spec.memory,
        timeout_seconds=spec.timeout,
        stderr_tail=stderr_path.read_text(errors="replace")[-3000:],
    )
    if process.returncode != 0 or not lines:
        report["error"] = f"child exited with {process.returncode}: {report['stderr_tail'][-1500:]}"
    elif report.get("result", {}).get("batchItemFailures"):
        report["error"] = f"handler reported failures: {report['result']}; {report['stderr_tail'][-1500:]}"
    return report


def run_reference(broadcast: Any, work: Path) -> dict[str, Any]:
    """``ffmpeg -c copy -movflags +faststart`` of the same init + segments from local disk."""
    listing = work / "concat.txt"
    listing.write_text("".join(f"{path}\n" for path in broadcast.paths()))
    output, usage = work / "reference.mp4", work / "reference.rusage"
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "mp4", "-i",
            f"concatf:{listing}", "-c", "copy", "-movflags", "+faststart", str(output)]  # fmt: skip
    stderr_path = work / "reference.stderr"
    peak_disk = 0
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            rusage_argv(usage, argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + REFERENCE_TIMEOUT
        while process.poll() is None:  # the output's size on disk (faststart rewrites it in place)
            with contextlib.suppress(OSError):
                peak_disk = max(peak_disk, output.stat().st_size)
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.02)
    (used,) = read_rusage(usage) or [{}]
    size = output.stat().st_size if output.exists() else 0
    report: dict[str, Any] = {
        "argv": [*argv[:9], "concatf:<list of init + segments>", *argv[10:]],
        "wall_seconds": used.get("wall_seconds"),
        "exit_code": process.returncode,
        "maxrss_mb": used.get("maxrss_kb", 0) * 1024 / MB,
        "cpu_seconds": used.get("cpu_seconds"),
        "disk_peak_bytes": max(peak_disk, size),
        "written_bytes": used.get("wchar", 0),
        "read_bytes": used.get("rchar", 0),
        "size": size,
        "input_bytes": broadcast.bytes,
    }
    if process.returncode != 0 or not used:
        report["error"] = f"ffmpeg exited with {process.returncode}: {stderr_path.read_text(errors='replace')[-1500:]}"
    return report


def measure_size(label: str, seconds: float, clip: Any, scratch: Path) -> SizeResult:
    """Generate, store, build (ours), remux (reference), verify: one broadcast length."""
    from bench import _recording_inputs as inputs
    from tests.support.aws import create_media_table

    result = SizeResult(label=label, seconds=seconds)
    work = scratch / re.sub(r"\W", "", label)
    work.mkdir()
    started = time.perf_counter()
    broadcast = inputs.generate(work / "segments", clip, seconds, _STARTED)
    result.generate_seconds = time.perf_counter() - started
    result.seconds, result.segments, result.input_bytes = broadcast.seconds, len(broadcast.segments), broadcast.bytes
    result.video_samples, result.audio_samples = broadcast.video_samples, broadcast.audio_samples
    _progress(f"{label}: {result.segments} segments generated in {result.generate_seconds:.1f} s")

    moto = Moto(work)
    try:
        s3, dynamodb = _clients(moto.endpoint)
        env, _ = _function_env(moto.endpoint, work)
        bucket, table_name = env["MEDIA_BUCKET"], env["TABLE_NAME"]
        s3.create_bucket(Bucket=bucket)
        create_media_table(dynamodb, table_name)
        session_id = f"20261203T120000Z-{re.sub(r'[^a-z0-9]', '', label.lower())}"
        started = time.perf_counter()
        inputs.upload(s3, bucket, _PLAYBACK, session_id, broadcast)
        ended = inputs.put_ended(
            s3, bucket, channel_id=_CHANNEL, playback_id=_PLAYBACK, session_id=session_id, started=_STARTED,
            seconds=broadcast.seconds,
        )  # fmt: skip
        result.upload_seconds = time.perf_counter() - started
        _progress(f"{label}: stored in moto in {result.upload_seconds:.1f} s; building (RecordingFunction)")

        moto_cpu = moto.cpu_seconds()
        result.ours = run_ours(moto.endpoint, work, inputs.sqs_event(bucket, ended), timeout=2 * 900 + 60)
        result.ours["moto_cpu_seconds"] = moto.cpu_seconds() - moto_cpu
        if "error" in result.ours:
            result.errors.append(f"ours: {result.ours['error']}")
        else:
            result.ours["item_status"] = status = _item_status(dynamodb, table_name, session_id)
            if status != "ready":
                result.errors.append(f"ours: the recording item says {status!r}")
            key = _mp4_key(session_id)
            size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
            result.ours["size"] = size

            def read(offset: int, length: int) -> bytes:
                range_ = f"bytes={offset}-{offset + length - 1}"
                return s3.get_object(Bucket=bucket, Key=key, Range=range_)["Body"].read()

            url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)
            result.ours_verified = verify(read, size, url, result)
    finally:
        moto.stop()

    _progress(f"{label}: reference ffmpeg remux")
    result.reference = run_reference(broadcast, work)
    if "error" in result.reference:
        result.errors.append(f"reference: {result.reference['error']}")
    else:
        path = work / "reference.mp4"
        with path.open("rb") as handle:

            def read_local(offset: int, length: int) -> bytes:
                handle.seek(offset)
                return handle.read(length)

            result.reference_verified = verify(read_local, path.stat().st_size, str(path), result)
    shutil.rmtree(work, ignore_errors=True)  # up to ~2 GB for 4 h: free it before the next size
    return result


def _mp4_key(session_id: str) -> str:
    from capturestream import keys

    return keys.VodRecording(playback_id=_PLAYBACK, session_id=session_id).key


def _item_status(dynamodb: Any, table_name: str, session_id: str) -> str | None:
    from capturestream import recordings, table

    item = dynamodb.get_item(TableName=table_name, Key=recordings.recording_key(session_id), ConsistentRead=True)
    return table.from_item(item["Item"]).get("status") if "Item" in item else None


# ------------------------------------------------------------------------------------------------ the child


class _Counters:
    """S3 requests and bytes of the child's handler, by build step (botocore event hooks)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.step = "setup"
        self.requests: dict[str, int] = {}
        self.read_bytes: dict[str, int] = {}
        self.gets: dict[str, int] = {}
        self.uploaded = 0
        self.complete_seconds = 0.0
        self._complete_started = 0.0

    def install(self, s3: Any) -> None:
        s3.meta.events.register("after-call.s3", self._after_call)
        s3.meta.events.register("before-call.s3.CompleteMultipartUpload", self._before_complete)
        s3.meta.events.register("before-parameter-build.s3.UploadPart", self._upload_part)

    def _after_call(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        with self.lock:
            self.requests[model.name] = self.requests.get(model.name, 0) + 1
            if model.name == "GetObject":
                self.gets[self.step] = self.gets.get(self.step, 0) + 1
                self.read_bytes[self.step] = self.read_bytes.get(self.step, 0) + int(parsed.get("ContentLength", 0))
            elif model.name == "CompleteMultipartUpload":
                self.complete_seconds += time.perf_counter() - self._complete_started

    def _before_complete(self, **_: Any) -> None:
        self._complete_started = time.perf_counter()

    def _upload_part(self, params: dict[str, Any], **_: Any) -> None:
        with self.lock:
            self.uploaded += len(params.get("Body") or b"")


#: The steps of ``build.py`` timed in the child: the name it calls → the step's label.
_STEPS = {
    "read_session_media": "list + scan segments",
    "ProgressiveMp4": "plan moov",
    "upload_mp4": "stream MP4 (multipart)",
    "build_images": "poster + storyboard",
    "broadcast_stats": "stats",
}
#: The steps that make the MP4 (what the reference does); the rest is the VOD playlist, images, stats, item.
MP4_STEPS = ("list + scan segments", "plan moov", "stream MP4 (multipart)")


def _wrap_steps(build: Any, counters: _Counters, seconds: dict[str, float]) -> None:
    for name, label in _STEPS.items():
        original = getattr(build, name, None)
        if original is None:
            continue

        def timed(*args: Any, _original: Any = original, _label: str = label, **kwargs: Any) -> Any:
            counters.step = _label
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[_label] = seconds.get(_label, 0.0) + time.perf_counter() - started
                counters.step = "other"

        setattr(build, name, timed)


def _child(config_path: str) -> int:
    """Inside the child: import the handler, invoke it once, print one JSON report line."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = json.loads(Path(config_path).read_text())
    rss_start = _status_kb("VmRSS") or 0
    started = time.perf_counter()
    module = importlib.import_module(config["module"])
    handler = getattr(module, config["attribute"])
    package = config["module"].rsplit(".", 1)[0]
    build = importlib.import_module(f"{package}.build")
    images = importlib.import_module(f"{package}.images")
    import_seconds = time.perf_counter() - started
    ffmpeg_report = Path(config["rusage"])
    images.subprocess = _RusageSubprocess(ffmpeg_report)  # ffmpeg's own peak memory, not the fork's
    counters = _Counters()
    s3, _ = module._clients()  # the handler's own cached clients, created before the clock starts
    counters.install(s3)
    steps: dict[str, float] = {}
    _wrap_steps(build, counters, steps)
    rss_ready = _status_kb("VmRSS") or 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = handler(config["event"], None)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    ffmpeg = read_rusage(ffmpeg_report)
    report = {
        "result": result,
        "wall_seconds": wall,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "import_seconds": import_seconds,
        "rss_start_mb": rss_start * 1024 / MB,
        "rss_ready_mb": rss_ready * 1024 / MB,
        "hwm_mb": (_status_kb("VmHWM") or 0) * 1024 / MB,
        "ffmpeg_runs": ffmpeg,
        "ffmpeg_maxrss_mb": max((run["maxrss_kb"] for run in ffmpeg), default=0) * 1024 / MB,
        "ffmpeg_cpu_seconds": sum(run["cpu_seconds"] for run in ffmpeg),
        "steps": steps,
        "requests": counters.requests,
        "gets": counters.gets,
        "read_bytes": counters.read_bytes,
        "uploaded_bytes": counters.uploaded,
        "complete_seconds": counters.complete_seconds,
    }
    print(CHILD_MARK + json.dumps(report), flush=True)
    return 0


# ================================================================================================ part 2: thumbnails


@dataclass
class ThumbnailRun:
    """Everything part 2 saw (times are ``time.monotonic()``)."""

    streams: int
    seconds: int
    setup_seconds: float = 0.0
    playback_ids: list[str] = field(default_factory=list)
    listed: dict[str, dict[int, float]] = field(default_factory=dict)
    thumbnails: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    #: ffmpeg seconds inside ThumbnailFunction, by ``"<playback_id>/<sequence>"``.
    ffmpeg_in_function: dict[str, float] = field(default_factory=dict)
    reference: list[float] = field(default_factory=list)
    list_calls: int = 0
    #: Seconds between consecutive listings of one stream (the poll period actually achieved).
    list_cycles: list[float] = field(default_factory=list)
    publisher_failures: list[str] = field(default_factory=list)
    error: str | None = None

    def lags(self) -> list[float]:
        """Listed → thumbnail message at the viewer, for every sampled segment that got one."""
        found = []
        for playback_id, received in self.thumbnails.items():
            seen = self.listed.get(playback_id, {})
            found += [arrived - seen[sequence] for arrived, sequence in received if sequence in seen]
        return found

    def rest_of_path(self) -> list[float]:
        """Listed → viewer minus ffmpeg's own time in the function, for the segments with both."""
        rest = []
        for playback_id, received in self.thumbnails.items():
            seen = self.listed.get(playback_id, {})
            for arrived, sequence in received:
                ffmpeg = self.ffmpeg_in_function.get(f"{playback_id}/{sequence}")
                if sequence in seen and ffmpeg is not None:
                    rest.append(arrived - seen[sequence] - ffmpeg)
        return rest

    def intervals(self) -> list[float]:
        """Gaps between consecutive thumbnails of one stream."""
        gaps = []
        for received in self.thumbnails.values():
            times = sorted(arrived for arrived, _ in received)
            gaps += [b - a for a, b in zip(times, times[1:], strict=False)]
        return gaps

    def sampled(self) -> int:
        """Sampled segments (sequence % 5 == 0) that were listed."""
        return sum(1 for seen in self.listed.values() for sequence in seen if sequence % THUMB_EVERY == 0)

    def missing(self) -> list[str]:
        """Sampled segments listed whose thumbnail never arrived."""
        missing = []
        for playback_id, seen in self.listed.items():
            got = {sequence for _, sequence in self.thumbnails.get(playback_id, [])}
            missing += [f"{playback_id}/{s}" for s in sorted(seen) if s % THUMB_EVERY == 0 and s not in got]
        return missing


class _Lister(threading.Thread):
    """Lists one stream's ``live/<playback_id>/`` every 20-50 ms; records when each segment was first listed.

    Each listing starts after the newest segment key seen (``StartAfter``; ``seg_*`` keys sort last in a session
    folder and session ids start with their UTC start time), so a poll returns only what is new and stays cheap
    for moto however many segments the stream has.
    """

    def __init__(self, s3: Any, bucket: str, playback_id: str, run: ThumbnailRun) -> None:
        super().__init__(name=f"lister-{playback_id}", daemon=True)
        self.s3, self.bucket, self.playback_id, self.run_ = s3, bucket, playback_id, run
        self.halt = threading.Event()
        self.cycles: list[float] = []

    def run(self) -> None:
        from capturestream import keys

        prefix = keys.playback_prefix(keys.LIVE_PREFIX, self.playback_id)
        seen = self.run_.listed.setdefault(self.playback_id, {})
        after, previous = "", None
        while not self.halt.is_set():
            page = self.s3.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, **({"StartAfter": after} if after else {})
            )
            now = time.monotonic()
            self.run_.list_calls += 1
            if previous is not None:
                self.cycles.append(now - previous)
            previous = now
            for item in page.get("Contents", []):
                with contextlib.suppress(ValueError):
                    decoded = keys.decode(item["Key"])
                    if isinstance(decoded, keys.LiveSegment):
                        seen.setdefault(decoded.sequence, now)
                        after = max(after, item["Key"])
            self.halt.wait(random.uniform(*LIST_JITTER))


def _start_up(tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any], str]:
    """``capturestream up --ports auto`` (JSON log on stdout, for the thumbnail function's ffmpeg times)."""
    from bench.up import _capturestream, _child_env, _status_ok

    state = tmp / "state"
    with (tmp / "up.log").open("wb") as log:
        process = subprocess.Popen(
            [_capturestream(), "up", "--ports", "auto", "--state-dir", str(state), "--log-format", "json"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(tmp),
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    deadline = time.monotonic() + UP_READY_TIMEOUT
    stack: dict[str, Any] = {}
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = (tmp / "up.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"capturestream up did not become ready: {tail}")
        if not stack and (state / "stack.json").exists():
            with contextlib.suppress(OSError, ValueError):
                stack = json.loads((state / "stack.json").read_text())
        if stack and _status_ok(stack["api_url"]):
            return process, stack, (state / "dev-token").read_text().strip()
        time.sleep(0.05)


def _stop_up(process: subprocess.Popen[bytes]) -> None:
    from bench.up import _kill_all, descendants

    tree = descendants(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(20)
    _kill_all(process, tree)  # whatever is left of the tree (moto runs in its own session)


def _create_channel(api_url: str, token: str, name: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{api_url}/api/channels",
        data=json.dumps({"name": name}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def _viewer(ws_url: str, run: ThumbnailRun, ready: asyncio.Event, done: asyncio.Event) -> None:
    """One lobby viewer: ``register``, then timestamp every ``thumbnail`` message."""
    import aiohttp

    pattern = re.compile(r"live_(\d+)\.jpg")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{ws_url}?viewer=bench-thumbs") as ws:
        await ws.send_str(json.dumps({"type": "register", "role": "viewer"}))
        ready.set()
        reader = asyncio.ensure_future(ws.receive())
        while not done.is_set():
            finished, _ = await asyncio.wait({reader}, timeout=0.1)
            if not finished:
                continue
            frame = reader.result()
            arrived = time.monotonic()
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message.get("type") == "thumbnail" and (match := pattern.search(message.get("url", ""))):
                run.thumbnails.setdefault(message["streamId"], []).append((arrived, int(match[1])))
            reader = asyncio.ensure_future(ws.receive())
        reader.cancel()


async def _publish(run: ThumbnailRun, urls: list[str]) -> None:
    from bench._recording_inputs import publisher_args

    processes = []
    for index, url in enumerate(urls):  # starts spread over one GOP: real encoders' keyframes don't coincide
        if index:
            await asyncio.sleep(1.0 / len(urls))
        processes.append(
            subprocess.Popen(
                publisher_args(url, run.seconds),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    for process in processes:
        _, stderr = await asyncio.to_thread(process.communicate, timeout=run.seconds + 60)
        if process.returncode != 0:
            run.publisher_failures.append(stderr.decode(errors="replace")[-500:])


def _ffmpeg_times(log: Path) -> dict[str, float]:
    """ffmpeg seconds of every thumbnail ThumbnailFunction published, by ``"<playback_id>/<sequence>"`` (its JSON
    log line carries the segment's ``key`` and ``ffmpeg_ms``)."""
    from capturestream import keys

    times = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"ffmpeg_ms"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError):
            record = json.loads(line[line.index("{") :])
            segment = keys.decode(record["key"])
            if record.get("outcome") == "published" and isinstance(segment, keys.LiveSegment):
                times[f"{segment.playback_id}/{segment.sequence}"] = record["ffmpeg_ms"] / 1000
    return times


def _reference_thumbnails(folder: Path, samples: list[tuple[Path, Path]]) -> list[float]:
    """The thumbnail ffmpeg command alone, init + segment on stdin from local disk, as the function runs it (with
    the binary `up` gives it: the static ffmpeg of the imageio-ffmpeg wheel, FfmpegLayer's)."""
    import imageio_ffmpeg

    from mediakit.ffmpeg_args import live_thumbnail_args

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    times = []
    for index, (init, segment) in enumerate(samples):
        jpeg, webp = folder / f"ref_{index}.jpg", folder / f"ref_{index}.webp"
        argv = live_thumbnail_args(source=None, jpeg=jpeg, webp=webp, ffmpeg_bin=ffmpeg)
        data = init.read_bytes() + segment.read_bytes()
        started = time.perf_counter()
        done = subprocess.run(argv, input=data, capture_output=True, timeout=30, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode == 0 and jpeg.stat().st_size > 0 and webp.stat().st_size > 0:
            times.append(elapsed)
    return times


def measure_thumbnails(streams: int, seconds: int) -> ThumbnailRun:
    """Part 2: publishers into a real ``up``, one lobby viewer, the segment lister; then the reference."""
    run = ThumbnailRun(streams=streams, seconds=seconds)
    with tempfile.TemporaryDirectory(prefix="bench-thumbs-") as name:
        tmp = Path(name)
        started = time.perf_counter()
        try:
            process, stack, token = _start_up(tmp)
        except (OSError, RuntimeError) as error:
            run.error = f"{type(error).__name__}: {error}"
            return run
        samples: list[tuple[Path, Path]] = []
        try:
            run.setup_seconds = time.perf_counter() - started
            channels = [_create_channel(stack["api_url"], token, f"bench thumbs {i}") for i in range(streams)]
            run.playback_ids = [c["channel"]["playbackId"] for c in channels]
            urls = [f"{c['ingest']['server']}/{c['streamKey']}" for c in channels]
            s3, _ = _clients(stack["s3_endpoint"])
            listers = [_Lister(s3, stack["bucket"], playback_id, run) for playback_id in run.playback_ids]

            async def drive() -> None:
                ready, done = asyncio.Event(), asyncio.Event()
                viewer = asyncio.create_task(_viewer(stack["ws_url"], run, ready, done))
                await asyncio.wait_for(ready.wait(), 10)
                await asyncio.sleep(0.3)  # the register reaches the WebSocket function
                for lister in listers:
                    lister.start()
                await _publish(run, urls)
                ended = time.monotonic()  # then wait for the last sampled segments' thumbnails (3 s at most)
                while time.monotonic() - ended < TAIL_SECONDS and (time.monotonic() - ended < 1 or run.missing()):
                    await asyncio.sleep(0.1)
                done.set()
                await viewer

            asyncio.run(drive())
            for lister in listers:
                lister.halt.set()
                lister.join(5)
            run.list_cycles = [cycle for lister in listers for cycle in lister.cycles]
            samples = _download_samples(s3, stack["bucket"], run, tmp / "samples")
        except Exception as error:  # noqa: BLE001 - reported in the table and the exit status
            run.error = f"{type(error).__name__}: {error}"
        finally:
            _stop_up(process)
        run.ffmpeg_in_function = _ffmpeg_times(tmp / "up.log")
        run.reference = _reference_thumbnails(tmp, samples)
    return run


def _download_samples(s3: Any, bucket: str, run: ThumbnailRun, folder: Path) -> list[tuple[Path, Path]]:
    """Init + every sampled segment of each stream, to local disk (the reference's input)."""
    from capturestream import keys

    folder.mkdir()
    samples = []
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=keys.LIVE_PREFIX)
    names = [item["Key"] for item in listed.get("Contents", [])]
    for key in names:
        decoded = keys.decode(key)
        if not isinstance(decoded, keys.LiveSegment) or decoded.sequence % THUMB_EVERY:
            continue
        obj = s3.get_object(Bucket=bucket, Key=key)
        meta = keys.SegmentMetadata.parse(obj.get("Metadata") or {})
        epoch = meta.epoch if meta else 0
        init_key = keys.LiveInit(playback_id=decoded.playback_id, session_id=decoded.session_id, epoch=epoch).key
        init = folder / init_key.replace("/", "_")
        if not init.exists():
            init.write_bytes(s3.get_object(Bucket=bucket, Key=init_key)["Body"].read())
        segment = folder / key.replace("/", "_")
        segment.write_bytes(obj["Body"].read())
        samples.append((init, segment))
    return samples


# ================================================================================================ report


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} MB" if value >= 10 else f"{value:.1f} MB"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _ratio(ours: float | None, reference: float | None) -> str:
    return "—" if not ours or not reference else f"{ours / reference:.1f}×"


def _peak_memory(ours: dict[str, Any]) -> float | None:
    """Handler process peak + its largest ffmpeg child (a Lambda sandbox counts both)."""
    if "maxrss_mb" not in ours:
        return None
    return ours["maxrss_mb"] + ours.get("ffmpeg_maxrss_mb", 0.0)


def build_table(results: list[SizeResult]) -> str:
    """Ours beside the reference, per broadcast length."""
    rows = []
    for r in results:
        ours, ref = r.ours, r.reference
        inputs = f"{r.segments:,} seg, {r.video_samples:,} v + {r.audio_samples:,} a samples"
        read, gets = sum(ours.get("read_bytes", {}).values()), ours.get("requests", {}).get("GetObject", 0)
        ours_io = f"S3 read {read / MB:,.0f} MB ({gets:,} GETs)" if read else "—"
        steps = ours.get("steps", {})
        mp4_steps = sum(steps.get(label, 0.0) for label in MP4_STEPS) if steps else None
        rows.append([
            r.label, inputs, "ours: RecordingFunction handler (moto S3)", _mb(ours.get("size", 0) / MB or None),
            _s(ours.get("wall_seconds")), _s(mp4_steps), _ratio(ours.get("wall_seconds"), ref.get("wall_seconds")),
            _s(ours.get("cpu_seconds")), _mb(ours.get("maxrss_mb")),
            _ratio(ours.get("maxrss_mb"), ref.get("maxrss_mb")),
            ours_io, _verdict(r.ours_verified),
        ])  # fmt: skip
        disk, written = ref.get("disk_peak_bytes", 0) / MB, ref.get("written_bytes", 0) / MB
        ref_io = f"local disk {disk:,.0f} MB (written {written:,.0f} MB)"
        rows.append([
            "", "", "reference: ffmpeg -c copy +faststart (local disk)", _mb(ref.get("size", 0) / MB or None),
            _s(ref.get("wall_seconds")), _s(ref.get("wall_seconds")), "1.0×" if ref.get("wall_seconds") else "—",
            _s(ref.get("cpu_seconds")),
            _mb(ref.get("maxrss_mb")), "1.0×" if ref.get("maxrss_mb") else "—", ref_io if ref else "—",
            _verdict(r.reference_verified),
        ])  # fmt: skip
    headers = ["broadcast", "input (bitrate scaled, sample counts real)", "subject", "MP4", "build",
               "↳ MP4 only", "× ref", "CPU", "peak RSS", "× ref", "I/O", "verified"]  # fmt: skip
    return markdown_table(headers, rows)


def _verdict(check: Verification) -> str:
    if check.ok:
        return f"ok ({check.duration:.2f} s, moov first)"
    return "FAILED" if check.error or check.boxes else "—"


def steps_table(results: list[SizeResult]) -> str:
    """Where ours spends the build, and what it reads."""
    rows = []
    for r in results:
        ours = r.ours
        if "steps" not in ours:
            continue
        steps = ours["steps"]
        other = ours["wall_seconds"] - sum(steps.values())
        reads = ours.get("read_bytes", {})
        gets = ours.get("gets", {})
        size = ours.get("size") or 0
        rows.append([
            r.label,
            *(_s(steps.get(label)) for label in _STEPS.values()),
            _s(ours.get("complete_seconds")), _s(other),
            f"{reads.get('list + scan segments', 0) / MB:,.1f} MB / {gets.get('list + scan segments', 0):,}",
            f"{reads.get('stream MP4 (multipart)', 0) / MB:,.0f} MB / {gets.get('stream MP4 (multipart)', 0):,}",
            f"{sum(reads.values()) / size:.3f}" if size else "—",
            f"{ours.get('requests', {}).get('UploadPart', 0):,}",
            _s(ours.get("moto_cpu_seconds")),
            f"{ours.get('rss_ready_mb', 0):.0f} → {ours.get('maxrss_mb', 0):.0f} MB",
            _mb(ours.get("ffmpeg_maxrss_mb")),
            _mb(ours.get("tmp_peak_bytes", 0) / MB),
        ])  # fmt: skip
    headers = ["broadcast", *_STEPS.values(), "↳ CompleteMultipartUpload (moto)", "rest",
               "scan read / GETs", "copy read / GETs", "S3 read ÷ MP4", "parts", "moto CPU", "RSS ready → peak",
               "ffmpeg peak", "TMPDIR peak"]  # fmt: skip
    return markdown_table(headers, rows)


def lambda_verdict(results: list[SizeResult], quick: bool) -> tuple[str, dict[str, Any]]:
    """Lambda limits, judged on the longest broadcast measured."""
    measured = [r for r in results if "wall_seconds" in r.ours]
    if not measured:
        return "Lambda limits: not measured (no build finished).", {}
    r = max(measured, key=lambda x: x.seconds)
    ours = r.ours
    limit_mb = ours["memory_limit_mb"] * 1024 * 1024 / MB
    memory = _peak_memory(ours) or 0.0
    checks = {
        "build_seconds": (ours["wall_seconds"], ours["wall_seconds"] <= ours["timeout_seconds"]),
        "peak_memory_mb": (memory, memory <= MEMORY_SHARE * limit_mb),
        "tmp_peak_bytes": (ours["tmp_peak_bytes"], ours["tmp_peak_bytes"] < (ours.get("size") or 0)),
    }

    def word(ok: bool) -> str:
        return "met" if ok else "MISSED"

    which = f"{r.label} broadcast" + (" (--quick: not the 4 h case)" if quick else "")
    text = (
        f"Lambda limits ({which}): build {_s(ours['wall_seconds'])} ≤ {ours['timeout_seconds']} s timeout: "
        f"**{word(checks['build_seconds'][1])}**; peak memory {memory:,.0f} MB (handler {ours['maxrss_mb']:,.0f} MB + "
        f"ffmpeg {ours.get('ffmpeg_maxrss_mb', 0):,.0f} MB) ≤ {MEMORY_SHARE:.0%} of MemorySize "
        f"{ours['memory_limit_mb']} MiB: **{word(checks['peak_memory_mb'][1])}**; /tmp peak "
        f"{ours['tmp_peak_bytes'] / MB:,.1f} MB for a {(ours.get('size') or 0) / MB:,.0f} MB MP4 (the MP4 never "
        f"in /tmp): **{word(checks['tmp_peak_bytes'][1])}**."
    )
    return text, {name: {"value": value, "met": ok} for name, (value, ok) in checks.items()}


def thumbnail_table(run: ThumbnailRun) -> tuple[str, dict[str, Any]]:
    """Freshness rows beside the ffmpeg floor."""
    series = {
        "listed_to_viewer": run.lags(),
        "ffmpeg_in_function": list(run.ffmpeg_in_function.values()),
        "rest_of_path": run.rest_of_path(),
        "reference_ffmpeg_alone": run.reference,
        "interval": run.intervals(),
    }
    summaries = {name: summarize(values, (50, 95)) for name, values in series.items()}
    lag, ref, gap = summaries["listed_to_viewer"], summaries["reference_ffmpeg_alone"], summaries["interval"]
    lag_met = lag.get("n", 0) > 0 and lag["max"] <= THUMB_LAG_TARGET and not run.missing()
    gap_met = gap.get("n", 0) > 0 and gap["max"] <= THUMB_INTERVAL_TARGET

    def row(label: str, summary: dict[str, Any], target: str, ratio: str = "—", unit: Any = ms) -> list[str]:
        if not summary.get("n"):
            return [label, "0", "—", "—", "—", ratio, target]
        return [label, str(summary["n"]), *(unit(summary[q]) for q in ("p50", "p95", "max")), ratio, target]

    word = {True: "met", False: "MISSED"}
    rows = [
        row("segment listed in S3 → `thumbnail` at the lobby viewer", lag,
            f"≤ 1 s: {word[lag_met]}" if lag.get("n") else "≤ 1 s", _ratio(lag.get("p50"), ref.get("p50"))),
        row("  ↳ ffmpeg inside ThumbnailFunction (its log, under load)", summaries["ffmpeg_in_function"], "—"),
        row("  ↳ the rest: events, S3, DynamoDB, notifier (per segment: lag − its ffmpeg)",
            summaries["rest_of_path"], "—"),
        row("reference: live_thumbnail ffmpeg alone, same bytes from disk (quiet)", ref, "—",
            "1.0×" if ref.get("n") else "—"),
        row("interval between thumbnails of a stream", gap,
            f"≤ 10 s: {word[gap_met]}" if gap.get("n") else "≤ 10 s", unit=_s),
    ]  # fmt: skip
    table = markdown_table(["path (per sampled segment)", "n", "p50", "p95", "max", "p50 × ref", "target"], rows)
    return table, {"series": series, "summaries": summaries, "lag_met": lag_met, "interval_met": gap_met}


def _cycle(cycles: list[float]) -> str:
    if not cycles:
        return "—"
    summary = summarize(cycles, (50, 95))
    return f"{summary['p50'] * 1000:.0f} ms (p50; p95 {summary['p95'] * 1000:.0f} ms)"


def _progress(message: str) -> None:
    print(f"[bench.recordings] {message}", file=sys.stderr, flush=True)


# ================================================================================================ main


def main(argv: list[str] | None = None) -> int:
    """Run both parts; print the tables; write the raw results."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return _child(argv[1])
    parser = argparse.ArgumentParser(prog="python -m bench.recordings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=None, help=f"broadcast lengths (default {DEFAULT_SIZES}; 0 skips)")
    parser.add_argument("--streams", type=int, default=None, help="thumbnail publishers (default 3; 0 skips)")
    parser.add_argument("--seconds", type=int, default=None, help="seconds each publisher streams (default 40)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: sizes {QUICK_SIZES}, 1 stream × 15 s")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    sizes_text = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    streams = args.streams if args.streams is not None else (1 if args.quick else 3)
    seconds = args.seconds or (15 if args.quick else 40)
    try:
        sizes = [] if sizes_text.strip() == "0" else [parse_size(s) for s in sizes_text.split(",")]
    except ValueError as error:
        parser.error(str(error))
    if streams < 0 or seconds < 6:
        parser.error("--streams must be >= 0 and --seconds >= 6")
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            print(f"bench.recordings needs {tool} on PATH", file=sys.stderr)
            return 2

    env = environment()
    failed = False
    data: dict[str, Any] = {"bench": "recordings", "argv": argv, "environment": env}
    if sizes:
        failed |= _builds_section(sizes, args.quick, env, data)
    if streams:
        failed |= _thumbnails_section(streams, seconds, env, data)
    path = write_results("recordings", data, args.results_dir)
    print(f"\nRaw results: {shown(path)}")
    return 1 if failed else 0


def _builds_section(sizes: list[tuple[str, float]], quick: bool, env: dict[str, Any], data: dict[str, Any]) -> bool:
    from bench import _recording_inputs as inputs

    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-recordings-") as name:
        scratch = Path(name)
        started = time.perf_counter()
        clip = inputs.Clip.from_tags(inputs.read_flv(inputs.encode_clip(scratch / "clip.flv")))
        clip_seconds = time.perf_counter() - started
        for label, seconds in sizes:
            try:
                results.append(measure_size(label, seconds, clip, scratch))
            except Exception as error:  # noqa: BLE001 - a size that could not be measured fails the bench
                failed = SizeResult(label=label, seconds=seconds, errors=[f"{type(error).__name__}: {error}"])
                results.append(failed)
    kbps = (results[0].input_bytes * 8 / results[0].seconds / 1000) if results and results[0].seconds else 0
    print(
        f"## Recording build: ended broadcast → faststart MP4 (ours: RecordingFunction against moto; reference: "
        f"ffmpeg remux on local disk)\n\nInput: {inputs.CLIP_SECONDS} s 640×360 30 fps H.264 High (B-frames, 1 s GOP) "
        f"+ AAC 48 kHz clip looped through mediakit.cmaf.Segmenter (1 s segments, 4 parts each) at {kbps:.0f} kb/s: "
        "bitrate scaled, sample counts real.\n"
    )
    print(build_table(results))
    print()
    print(steps_table(results))
    print()
    verdict, checks = lambda_verdict(results, quick)
    print(verdict)
    for r in results:
        problems = list(r.errors)
        problems += [f"ours: verification: {r.ours_verified.error}"] if r.ours_verified.error else []
        problems += [f"reference: verification: {r.reference_verified.error}"] if r.reference_verified.error else []
        for problem in problems:
            print(f"\n**{r.label} FAILED** — {problem}")
    print(
        f"\nClip encoded in {clip_seconds:.1f} s; per size: generate "
        + ", ".join(f"{r.label} {r.generate_seconds:.1f} s" for r in results)
        + "; store in moto "
        + ", ".join(f"{r.label} {r.upload_seconds:.1f} s" for r in results)
        + f". {environment_line(env)}."
    )
    data["builds"] = [asdict(r) for r in results]
    data["lambda_limits"] = checks
    return any(r.failed for r in results)


def _thumbnails_section(streams: int, seconds: int, env: dict[str, Any], data: dict[str, Any]) -> bool:
    _progress(f"thumbnails: {streams} publisher(s) × {seconds} s through capturestream up")
    run = measure_thumbnails(streams, seconds)
    table, summary = thumbnail_table(run)
    print(
        f"\n## Live thumbnail freshness: {streams} publisher(s) × {seconds} s (640×360 30 fps, 1 s GOP) through "
        "`capturestream up`, one lobby viewer\n"
    )
    print(table)
    missing = run.missing()
    print(
        f"\n{sum(len(t) for t in run.thumbnails.values())} thumbnails for {run.sampled()} sampled segments listed "
        f"(missing: {', '.join(missing) or 'none'}); `up` ready in {run.setup_seconds:.1f} s. Each stream's "
        f"live/ folder listed {run.list_calls} times, every {_cycle(run.list_cycles)}: a segment is seen about half a "
        f"period after it lands, which shortens the first row by as much. {environment_line(env)}."
    )
    if run.publisher_failures:
        print(f"\n{len(run.publisher_failures)} publisher(s) failed: {run.publisher_failures[0]}")
    if run.error:
        print(f"\n**thumbnails FAILED** — {run.error}")
    data["thumbnails"] = {**summary, "raw": asdict(run), "missing": missing}
    return run.error is not None or not run.thumbnails or bool(run.publisher_failures)


if __name__ == "__main__":
    sys.exit(main())
