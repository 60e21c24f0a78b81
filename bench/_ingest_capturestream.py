"""CaptureStream as a subject of :mod:`bench.ingest`: ``capturestream up``, one channel per publisher, the CDN edge.

- Started as ``bench.up`` starts it: ``.venv/bin/capturestream up --ports auto --state-dir <fresh temp dir>`` from the
  repo root in its own session; ready once ``stack.json`` exists and ``GET /api/status`` answers 200. Stopped with
  SIGTERM until the whole tree (``up``, its moto child, its ingest node child) is gone (SIGKILL after 20 s: failure).
- Channels: ``POST /api/channels`` with the ``dev-token``; the API allows 20 channels per owner, so channels beyond
  the 20th are created by further local owners whose tokens are signed here with the state dir's local JWT secret
  (``secrets.json``, written by ``up``), as ``up`` signs the dev token.
- Where a stream's playlist is: the node names each broadcast's session, so the bench lists ``live/`` in the bucket
  (every 30-70 ms until every observed stream has a session) and reads the playlist through the CDN edge only.
- Object keys are built and parsed with :mod:`capturestream.keys` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench._ingest_proc import read_stat
from bench.up import descendants
from capturestream import keys, tokens
from capturestream.errors import InvalidKey

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
CHANNELS_PER_OWNER = 20  # functions/api/routes/channels.py MAX_CHANNELS_PER_OWNER
SECRETS_FILE = "secrets.json"  # devstack/stack.py LocalStack._jwt_secret
_FAKE_AWS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


class EdgeSource:
    """An :class:`~bench._ingest_hls.HlsSource`: one stream's live playlist and segments via the CDN edge."""

    def __init__(self, http: aiohttp.ClientSession, cdn_url: str, playback_id: str) -> None:
        self.http = http
        self.cdn_url = cdn_url
        self.playback_id = playback_id
        self.session_id: str | None = None
        self.found_at: float | None = None
        self.statuses: dict[int, int] = {}
        self._found = asyncio.Event()

    def found(self, session_id: str) -> None:
        """The discoverer saw this stream's session."""
        if self.session_id is None:
            self.session_id, self.found_at = session_id, time.monotonic()
            self._found.set()

    async def ready(self) -> None:
        """Wait for the session id."""
        await self._found.wait()

    async def _get(self, key: str) -> bytes | None:
        async with self.http.get(f"{self.cdn_url}/{key}") as response:
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            body = await response.read()
            return body if response.status == 200 else None

    async def playlist(self) -> str | None:
        """The live playlist as the edge serves it."""
        assert self.session_id is not None
        body = await self._get(keys.LivePlaylist(playback_id=self.playback_id, session_id=self.session_id).key)
        return None if body is None else body.decode()

    async def segment(self, uri: str) -> int | None:
        """GET the segment through the edge (the URI is relative to the playlist, in the session's folder)."""
        assert self.session_id is not None
        key = keys.session_prefix(keys.LIVE_PREFIX, self.playback_id, self.session_id) + uri
        if not isinstance(keys.decode(key), keys.LiveSegment):
            raise InvalidKey(f"not a live segment: {key}")
        body = await self._get(key)
        return None if body is None else len(body)


class CaptureStreamSubject:
    """One ``capturestream up`` with ``n`` channels, for one run of the bench."""

    name = "CaptureStream"
    node_roles = frozenset({"node"})

    def __init__(self, scratch: Path, http: aiohttp.ClientSession) -> None:
        self.scratch = scratch
        self.state = scratch / "state"
        self.http = http
        self.process: subprocess.Popen[bytes] | None = None
        self.stack: dict[str, Any] = {}
        self.channels: list[dict[str, Any]] = []
        self.sources: dict[int, EdgeSource] = {}
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self.list_calls = 0
        self._exit = contextlib.AsyncExitStack()
        self._s3: Any = None

    @property
    def pid(self) -> int:
        """The ``up`` process, root of the measured tree."""
        assert self.process is not None
        return self.process.pid

    def classify(self, pid: int, cmdline: str) -> str:
        """Role of a process of the tree: ``up``, ``moto``, ``node`` (the ingest node) or ``other``."""
        if pid == self.pid:
            return "up"
        if "ingest_node" in cmdline:
            return "node"
        if "moto_process" in cmdline:
            return "moto"
        return "other"

    async def start(self, n: int) -> None:
        """Start ``up``, wait until it is ready, create ``n`` channels."""
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAPTURESTREAM_") and k != "AWS_ENDPOINT_URL"}
        env["TMPDIR"] = str(self.scratch)
        script = Path(sys.executable).with_name("capturestream")
        with (self.scratch / "up.out").open("wb") as out:
            self.process = subprocess.Popen(
                [str(script), "up", "--ports", "auto", "--state-dir", str(self.state)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO_ROOT,  # as `./dev up` runs it
                start_new_session=True,
            )
        stack_file = self.state / "stack.json"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"capturestream up exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() - started > READY_TIMEOUT:
                raise RuntimeError(f"capturestream up not ready after {READY_TIMEOUT:.0f} s: {self.log_tail()}")
            if not self.stack and stack_file.exists():
                with contextlib.suppress(OSError, ValueError):
                    self.stack = json.loads(stack_file.read_text())
            if self.stack and await self._status_ok():
                break
            await asyncio.sleep(0.02)
        self.start_seconds = time.monotonic() - started
        self._s3 = await self._exit.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=self.stack["s3_endpoint"],
                region_name=self.stack["region"],
                config=AioConfig(request_checksum_calculation="when_required"),
                **_FAKE_AWS,
            )
        )
        owner_tokens = [(self.state / "dev-token").read_text().strip()]
        secret = json.loads((self.state / SECRETS_FILE).read_text())["jwt_secret"]
        for index in range(n):
            owner = index // CHANNELS_PER_OWNER
            if owner == len(owner_tokens):
                owner_tokens.append(tokens.issue_token(secret, f"bench-owner-{owner}", 3600, name="bench"))
            self.channels.append(await self._create_channel(f"bench {index}", owner_tokens[owner]))

    async def _status_ok(self) -> bool:
        try:
            async with self.http.get(f"{self.stack['api_url']}/api/status") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def _create_channel(self, name: str, token: str) -> dict[str, Any]:
        async with self.http.post(
            f"{self.stack['api_url']}/api/channels", json={"name": name}, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            body = await response.json()
            if response.status != 201:
                raise RuntimeError(f"POST /api/channels answered {response.status}: {body}")
            return body

    def url(self, index: int) -> str:
        """The publish URL of stream ``index``: the node's RTMP URL and the channel's stream key."""
        created = self.channels[index]
        return f"{created['ingest']['server']}/{created['streamKey']}"

    def playback_id(self, index: int) -> str:
        return self.channels[index]["channel"]["playbackId"]

    def source(self, index: int) -> EdgeSource:
        """The observer's view of stream ``index`` (the CDN edge)."""
        if index not in self.sources:
            self.sources[index] = EdgeSource(self.http, self.stack["cdn_url"], self.playback_id(index))
        return self.sources[index]

    async def discover(self, deadline: float, rng: random.Random) -> None:
        """List ``live/`` until every observed stream's session is known (or ``deadline``)."""
        by_playback = {source.playback_id: source for source in self.sources.values()}
        while time.monotonic() < deadline and any(s.session_id is None for s in by_playback.values()):
            for key in await self._list(keys.LIVE_PREFIX):
                with contextlib.suppress(InvalidKey):
                    decoded = keys.decode(key)
                    source = by_playback.get(decoded.playback_id)
                    if source is not None:
                        source.found(decoded.session_id)
            await asyncio.sleep(rng.uniform(0.03, 0.07))

    async def _list(self, prefix: str) -> list[str]:
        found: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.stack["bucket"], Prefix=prefix):
            self.list_calls += 1
            found.extend(item["Key"] for item in page.get("Contents", []))
        return found

    async def stored(self) -> list[dict[str, int]]:
        """Per stream: live segments stored in S3 and sessions seen (every stream, observed or not)."""
        counts = []
        for index in range(len(self.channels)):
            segments, sessions = 0, set()
            for key in await self._list(keys.playback_prefix(keys.LIVE_PREFIX, self.playback_id(index))):
                with contextlib.suppress(InvalidKey):
                    decoded = keys.decode(key)
                    sessions.add(decoded.session_id)
                    segments += isinstance(decoded, keys.LiveSegment)
            counts.append({"segments": segments, "sessions": len(sessions)})
        return counts

    async def diagnostics(self) -> dict[str, Any]:
        """Where media waits inside the node: its Prometheus ``/metrics`` (at ``ingest_http_url``), summed over
        labels; ``{"metrics": None, "why": ...}`` when the node serves none (404) or cannot be reached."""
        origin = self.stack.get("ingest_http_url")
        if not origin:
            return {"metrics": None, "why": "no ingest_http_url in stack.json"}
        try:
            async with self.http.get(f"{origin}/metrics") as response:
                if response.status != 200:
                    return {"metrics": None, "why": f"GET /metrics answered {response.status}"}
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            return {"metrics": None, "why": f"GET /metrics failed: {type(error).__name__}"}
        return {"metrics": parse_metrics(text)}

    async def stop(self) -> str | None:
        """SIGTERM ``up`` and wait for its whole tree; an error message when it had to be killed."""
        await self._exit.aclose()
        if self.process is None:
            return None
        tree = descendants(self.process.pid)  # {pid: starttime}
        started = time.monotonic()
        error = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        while self.process.poll() is None or any(_alive(pid, start) for pid, start in tree.items()):
            if time.monotonic() - started > STOP_TIMEOUT:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                for pid in tree:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait()
                error = f"capturestream up still running {STOP_TIMEOUT:.0f} s after SIGTERM; killed"
                break
            await asyncio.sleep(0.02)
        self.stop_seconds = time.monotonic() - started
        if error is None and self.process.returncode not in (0, -signal.SIGTERM):
            error = f"capturestream up exited with {self.process.returncode}"
        return error

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for path in [self.scratch / "up.out", *sorted((self.state / "logs").glob("*.log"))]:
            if path.exists():
                tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
                out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def findings(self) -> dict[str, Any]:
        """Warnings and errors the node and ``up`` logged (first 40 lines of each kind), and their counts."""
        result: dict[str, Any] = {}
        for path in [self.scratch / "up.out", *sorted((self.state / "logs").glob("*.log"))]:
            if not path.exists():
                continue
            text = path.read_text(errors="replace").splitlines()
            flagged = [line for line in text if any(w in line for w in (" WARNING", " ERROR", "Traceback", "CRITICAL"))]
            result[path.name] = {
                "lines": len(text),
                "flagged": len(flagged),
                "first_flagged": [line[:300] for line in flagged[:40]],
            }
        return result


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → ``{sample name: value summed over its labels}`` (histogram buckets left out)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith(("_bucket", "_created")):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def _alive(pid: int, start: int) -> bool:
    """True while ``pid`` is still the process that started at ``start`` and has not exited."""
    stat = read_stat(pid)
    return stat is not None and stat[0] == start
