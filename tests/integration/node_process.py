"""``python -m ingest_node`` as a child process with real ffmpeg publishers, for the tests that stop, restart or
break what is around a whole node (the spool, graceful shutdown), and the nothing-lost check they share."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

from tests.integration.node_support import BUCKET, TABLE
from tests.support.s3_proxy import S3Proxy

SEGMENT = re.compile(r"seg_(\d+)\.m4s")


def node_env(moto_endpoint: str, s3_endpoint: str, spool_dir: Path, **settings: str) -> dict[str, str]:
    """The node's environment: DynamoDB on moto, S3 at ``s3_endpoint`` (a :class:`S3Proxy`), every listener on a
    free 127.0.0.1 port, go-live off; ``settings`` (``SEGMENT_SECONDS="4"``, ...) on top."""
    return {
        **os.environ,
        "TABLE_NAME": TABLE,
        "MEDIA_BUCKET": BUCKET,
        "RTMP_HOST": "127.0.0.1",
        "RTMP_PORT": "0",
        "CAPTURE_HOST": "127.0.0.1",
        "CAPTURE_PORT": "0",
        "CAPTURE_ENABLED": "false",
        "SEGMENT_SECONDS": "1",
        "RECONNECT_WINDOW": "0",
        "AWS_ENDPOINT_URL": moto_endpoint,  # DynamoDB (stream keys)
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "SPOOL_DIR": str(spool_dir),
        "LOG_LEVEL": "INFO",
        **settings,
    }


class Node:
    """``python -m ingest_node`` as a child process; its log (stderr) goes to ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: asyncio.subprocess.Process | None = None
        #: Seconds from SIGTERM to exit, after :meth:`stop`.
        self.stop_seconds: float | None = None

    async def start(self) -> int:
        """Start it; its RTMP port once it listens."""
        with open(self.log, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ingest_node", env=self.env, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 20)
        return int(json.loads(line)["port"])

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM (a graceful stop); its exit code (killed after ``timeout`` s)."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        finally:
            self.stop_seconds = time.monotonic() - started
            await kill(self.process)


async def publish(port: int, key: str, seconds: float) -> asyncio.subprocess.Process:
    """ffmpeg as OBS, in real time: 320x240 25 fps H.264 with a keyframe every second, and AAC."""
    return await asyncio.create_subprocess_exec(
        *("ffmpeg", "-hide_banner", "-loglevel", "error", "-re"),
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000"),
        *("-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"),
        *("-f", "flv", f"rtmp://127.0.0.1:{port}/live/{key}"),
        stdin=asyncio.subprocess.DEVNULL,
    )


async def kill(process: asyncio.subprocess.Process | None) -> None:
    """SIGKILL a child that still runs, and reap it."""
    if process is not None and process.returncode is None:
        process.kill()
        await process.wait()


def stored_sessions(proxy: S3Proxy) -> dict[str, list[tuple[str, bytes | None]]]:
    """Stored PUTs under ``live/`` per session prefix, in storage order: (file name, playlist body)."""
    sessions: dict[str, list[tuple[str, bytes | None]]] = defaultdict(list)
    for put in proxy.puts:
        if put.status == 200 and put.key.startswith("live/"):
            prefix, name = put.key.rsplit("/", 1)
            sessions[prefix].append((name, put.body))
    return sessions


def check_nothing_lost(proxy: S3Proxy) -> dict[str, int]:
    """Every broadcast: final playlist with ENDLIST, all its segments stored in order, no playlist ahead of its
    segments. Returns the segment count per session."""
    counts = {}
    for prefix, puts in stored_sessions(proxy).items():
        stored: list[int] = []
        final = b""
        for name, body in puts:
            if name.endswith(".m3u8"):
                assert body is not None
                named = [int(n) for n in SEGMENT.findall(body.decode())]
                missing = sorted(set(named) - set(stored))
                assert not missing, f"{prefix}: a playlist named segments not stored: {missing}"
                final = body
            elif match := SEGMENT.fullmatch(name):
                stored.append(int(match.group(1)))
        assert b"#EXT-X-ENDLIST" in final, f"{prefix}: no final playlist stored"
        last = max(int(n) for n in SEGMENT.findall(final.decode()))
        assert stored == sorted(stored), f"{prefix}: segments stored out of order"
        missing = sorted(set(range(stored[0], last + 1)) - set(stored))
        assert not missing, f"{prefix}: segments lost: {missing}"
        counts[prefix] = len(stored)
    return counts
