"""The ingest node's server under abuse, with a real ffmpeg publisher streaming at the same time (BRIEF §7).

The node runs in-process (RtmpServer + SessionRegistry + Uploader + StreamKeyChecker) against the moto server;
garbage, half-open and wrong-key clients hit it while a healthy ffmpeg stream keeps flowing: they are cut off,
the healthy stream's segments keep arriving, and no key reaches a log line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import struct
from collections.abc import AsyncIterator

import boto3
import pytest
from aiobotocore.session import get_session

from capturestream import keys
from ingest_node.publishers.rtmp_server import ConnectionLimits, RtmpServer
from ingest_node.publishers.stream_keys import StreamKeyChecker
from ingest_node.sessions.registry import SessionRegistry
from ingest_node.storage.uploader import Uploader
from tests.integration.node_support import BUCKET, TABLE, PublishTarget
from tests.unit.rtmp.helpers import Client, ClientHandshake

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")


@pytest.fixture
async def node(publish_target: PublishTarget) -> AsyncIterator[tuple[RtmpServer, int, dict]]:
    async with Uploader(BUCKET) as uploader, get_session().create_client("dynamodb") as ddb:
        registry = SessionRegistry(uploader, reconnect_window=0, segment_seconds=1.0, node_id="test")
        # 27 abusive clients connect at once from 127.0.0.1 here: the per-address cap is the hostile test's subject
        limits = ConnectionLimits(setup_timeout=1.5, idle_timeout=3, max_preauth_per_address=64)
        server = RtmpServer(registry, StreamKeyChecker(ddb, TABLE), limits=limits)
        port = await server.start("127.0.0.1", 0)
        yield server, port, {"channel": publish_target.channel, "key": publish_target.key}
        await server.close()
        await registry.close()


async def _garbage(port: int, seed: int) -> bool:
    """Send random bytes after a valid-looking C0; True when the server closed the connection on us."""
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\x03" + rng.randbytes(1536))
        await reader.readexactly(3073)
        writer.write(rng.randbytes(1536))  # C2
        for _ in range(50):
            writer.write(rng.randbytes(rng.randint(1, 4096)))
            await writer.drain()
        return await asyncio.wait_for(reader.read(), 5) is not None
    except (ConnectionError, asyncio.IncompleteReadError):
        return True
    finally:
        writer.close()


async def _huge_message(port: int) -> bool:
    """A valid handshake, then a chunk header announcing a 16 MiB message: refused without buffering it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        handshake = ClientHandshake()
        writer.write(handshake.c0c1())
        s0s1s2 = await reader.readexactly(3073)
        writer.write(ClientHandshake.c2(s0s1s2))
        writer.write(
            bytes((0x03,))
            + (0).to_bytes(3, "big")
            + (0xFFFFFF).to_bytes(3, "big")
            + b"\x14"
            + struct.pack("<I", 0)
            + b"\x00" * 128
        )
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)
        return True
    except (ConnectionError, asyncio.IncompleteReadError):
        return True
    finally:
        writer.close()


async def _slowloris(port: int) -> float:
    """Connect and dribble one byte a second; returns how long the server tolerated it."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(20):
            writer.write(b"\x03")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1 << 16), 1.0) == b"":
                    break
            except TimeoutError:
                continue
    except ConnectionError:
        pass
    finally:
        writer.close()
    return loop.time() - started


async def _wrong_key(port: int, key: str) -> bytes:
    """A full publish with a wrong key; returns everything the server sent before closing."""
    client = Client()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    handshake = ClientHandshake()
    writer.write(handshake.c0c1())
    s0s1s2 = await reader.readexactly(3073)
    writer.write(ClientHandshake.c2(s0s1s2))
    writer.write(client.command("connect", 1, {"app": "live", "tcUrl": f"rtmp://127.0.0.1:{port}/live"}))
    writer.write(client.command("createStream", 2, None))
    writer.write(client.command("publish", 3, None, key, "live", csid=4, stream_id=1))
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), 5)  # until the server closes
    writer.close()
    return received


async def test_abusive_clients_are_cut_off_while_a_healthy_stream_flows(node, caplog) -> None:
    server, port, healthy = node
    caplog.set_level(logging.DEBUG)
    url = f"rtmp://127.0.0.1:{port}/live/{healthy['key']}"
    publisher = await asyncio.create_subprocess_exec(
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=48000",
        "-t",
        "6",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        "-c:a",
        "aac",
        "-f",
        "flv",
        url,
    )
    await asyncio.sleep(1.0)
    wrong_key = healthy["key"][:-3] + "XYZ"
    results = await asyncio.gather(
        *(_garbage(port, seed) for seed in range(5)),
        _huge_message(port),
        _slowloris(port),
        *(_wrong_key(port, wrong_key) for _ in range(20)),
    )
    garbage, huge, slow, refusals = results[:5], results[5], results[6], results[7:]
    assert all(garbage) and huge
    assert slow < 5, f"slowloris held a connection for {slow:.1f} s (setup timeout 1.5 s)"
    assert all(b"NetStream.Publish.BadName" in reply for reply in refusals)
    assert await asyncio.wait_for(publisher.wait(), 20) == 0
    await asyncio.sleep(1.5)
    s3 = boto3.client("s3")
    prefix = keys.playback_prefix(keys.LIVE_PREFIX, healthy["channel"].playback_id)
    segments = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        if o["Key"].endswith(".m4s")
    ]
    assert len(segments) >= 5, segments  # 6 s published: the healthy stream lost nothing to the abuse
    logged = "\n".join(record.getMessage() + str(vars(record)) for record in caplog.records)
    assert healthy["key"] not in logged and wrong_key not in logged
    assert not server.connections or all(c.transport.is_closing() for c in server.connections)
