"""The two subjects of :mod:`bench.glass_to_glass`, each an async context manager that yields the page to open and
the publisher once the stream is playable, and stops everything it started on the way out.

- :func:`capturestream`: ``capturestream up --ports auto`` (as :mod:`bench.ingest` starts it), ``capturestream
  channel create --json``, the publisher over RTMP; playable once ``GET /api/stream/<playbackId>`` says live and its
  ``playbackUrl`` lists :data:`READY_SEGMENTS` segments at ``up``'s edge.
- :func:`reference`: the same publisher writing its own HLS into ``ref/`` of the :class:`PageServer`, the bench's own
  :class:`~devstack.cdn_edge.CdnEdge` over a temp copy of the pages; playable once its playlist lists as many.
- :class:`Encoder`: the publisher, one ffmpeg in its own session (a Ctrl-C reaches the bench only, which stops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import _clock
from bench._ingest_capturestream import CaptureStreamSubject
from devstack.cdn_edge import CdnEdge

REPO_ROOT = Path(__file__).resolve().parents[1]
FPS = 30
READY_SEGMENTS = 3  # the page opens once the playlist lists this many segments
LIVE_TIMEOUT = 40.0  # publisher spawned → playable
STOP_TIMEOUT = 10.0


class Failed(Exception):
    """A subject could not be measured; the message says why."""


class Encoder:
    """The publisher: one ffmpeg in its own session (a Ctrl-C reaches the bench only, which stops it)."""

    def __init__(self, scratch: Path, output: list[str]) -> None:
        self.scratch = scratch
        self.output = output
        self.log = scratch / "ffmpeg.log"
        self.process: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0

    async def start(self) -> None:
        """Write the clock filter and spawn ffmpeg."""
        script = self.scratch / "clock.vf"
        script.write_text(_clock.filter_script(FPS))
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *_clock.encoder_args(script, fps=FPS),
                *self.output,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        self.spawned_at = time.monotonic()

    def check(self) -> None:
        """Raise :class:`Failed` when ffmpeg has exited."""
        if self.process is not None and self.process.returncode is not None:
            raise Failed(f"the publisher exited with {self.process.returncode}: {self.tail()}")

    def tail(self, lines: int = 8) -> str:
        text = self.log.read_text(errors="replace").strip() if self.log.exists() else ""
        return " | ".join(text.splitlines()[-lines:]) or "(no output)"

    async def stop(self) -> None:
        """SIGTERM (ffmpeg finishes its output), SIGKILL to its group after :data:`STOP_TIMEOUT`."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


class PageServer:
    """The bench's own edge: :class:`CdnEdge` over a temp web root holding a copy of the pages and ``ref/``."""

    def __init__(self, scratch: Path, pages: Path) -> None:
        self.root = scratch / "www"
        shutil.copytree(pages, self.root)
        self.ref = self.root / "ref"
        self.ref.mkdir()
        self.url = ""
        self.edge = CdnEdge(None, "", self.root)  # no bucket: the reference is files under the web root
        self._runner: web.AppRunner | None = None

    def allow(self, url: str) -> None:
        """Let the pages fetch from ``url``'s origin too (the edge's CSP ``connect-src``, from its runtime config)."""
        self.edge = CdnEdge(None, "", self.root, runtime_config={"mediaUrl": url})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", lambda request: self.edge.handle(request))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _playlist_segments(http: aiohttp.ClientSession, url: str) -> int:
    """How many segments the playlist at ``url`` lists (0 when it is not there yet)."""
    with contextlib.suppress(aiohttp.ClientError):
        async with http.get(url) as response:
            if response.status == 200:
                return (await response.text()).count("#EXTINF")
    return 0


async def _wait_for_segments(http: aiohttp.ClientSession, url: str, encoder: Encoder) -> None:
    deadline = encoder.spawned_at + LIVE_TIMEOUT
    while await _playlist_segments(http, url) < READY_SEGMENTS:
        encoder.check()
        if time.monotonic() > deadline:
            raise Failed(f"{url} did not list {READY_SEGMENTS} segments within {LIVE_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)


# ----------------------------------------------------------------------------------------------------- subjects


@contextlib.asynccontextmanager
async def reference(
    pages: PageServer, http: aiohttp.ClientSession, scratch: Path
) -> AsyncIterator[tuple[str, Encoder]]:
    """ffmpeg's own HLS in ``ref/`` of the bench's edge; yields the page URL and the publisher."""
    for stale in pages.ref.iterdir():  # a previous run's segments
        stale.unlink()
    encoder = Encoder(scratch, _clock.hls_output(pages.ref))
    try:
        await encoder.start()
        await _wait_for_segments(http, f"{pages.url}/ref/index.m3u8", encoder)
        yield f"{pages.url}/watch.html?src=/ref/index.m3u8", encoder
    finally:
        await encoder.stop()


@contextlib.asynccontextmanager
async def capturestream(
    pages: PageServer | None, http: aiohttp.ClientSession, scratch: Path
) -> AsyncIterator[tuple[str, Encoder]]:
    """``capturestream up``, a channel, the publisher over RTMP; yields the watch URL and the publisher.

    With ``pages`` (``--web-root``) the page comes from the bench's edge and plays the API's ``playbackUrl``.
    """
    subject = CaptureStreamSubject(scratch, http)
    encoder: Encoder | None = None
    try:
        try:
            await subject.start(0)
        except RuntimeError as error:  # not ready, or exited: the message carries its log tail
            raise Failed(str(error)) from None
        created = await _channel_create(subject.state)
        encoder = Encoder(scratch, _clock.rtmp_output(f"{created['ingest']['server']}/{created['streamKey']}"))
        await encoder.start()
        playback_url = await _wait_until_live(http, subject.stack["api_url"], created["channel"]["playbackId"], encoder)
        await _wait_for_segments(http, playback_url, encoder)
        if pages is None:
            yield created["watchUrl"], encoder
        else:
            pages.allow(playback_url)
            yield f"{pages.url}/watch.html?src={urllib.parse.quote(playback_url, safe='')}", encoder
    finally:
        if encoder is not None:
            await encoder.stop()
        error = await subject.stop()
        if error:
            print(f"bench.glass_to_glass: {error}", file=sys.stderr)


async def _channel_create(state: Path) -> dict[str, Any]:
    """``capturestream channel create g2g --json --state-dir STATE``: stream key, RTMP server, watch URL."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("capturestream")),
        *("channel", "create", "glass to glass", "--json", "--state-dir", str(state)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise Failed(f"capturestream channel create exited with {process.returncode}: {err.decode().strip()}")
    return json.loads(out)


async def _wait_until_live(http: aiohttp.ClientSession, api_url: str, playback_id: str, encoder: Encoder) -> str:
    """Poll ``GET /api/stream/<playbackId>`` until the stream is live; its ``playbackUrl``."""
    deadline = encoder.spawned_at + LIVE_TIMEOUT
    while True:
        encoder.check()
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            async with http.get(f"{api_url}/api/stream/{playback_id}") as response:
                body = await response.json() if response.status == 200 else {}
            if body.get("status") == "live" and body.get("playbackUrl"):
                return body["playbackUrl"]
        if time.monotonic() > deadline:
            raise Failed(f"stream {playback_id} not live within {LIVE_TIMEOUT:.0f} s: {encoder.tail()}")
        await asyncio.sleep(0.1)
