"""The RTMP listener's limits, one at a time, with raw sockets against an in-process node on moto: the per-address
pre-auth cap (publishing connections exempt), the node cap, the pre-auth byte budget, and the idle watchdog that
does not count time the node itself paused reading (a slow S3 must never drop a healthy publisher).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiobotocore.session import get_session

from ingest_node import metrics
from ingest_node.publishers.rtmp_server import ConnectionLimits, RtmpServer
from ingest_node.publishers.stream_keys import StreamKeyChecker
from ingest_node.sessions.registry import SessionRegistry
from ingest_node.storage.uploader import Uploader
from tests.integration.node_support import BUCKET, TABLE, PublishTarget
from tests.unit.rtmp.helpers import AAC_SEQUENCE_HEADER, Client, ClientHandshake, aac_frame

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def start(publish_target: PublishTarget) -> AsyncIterator[Callable]:
    servers: list[RtmpServer] = []
    async with Uploader(BUCKET) as uploader, get_session().create_client("dynamodb") as ddb:
        registry = SessionRegistry(uploader, reconnect_window=0, segment_seconds=1.0, node_id="test")

        async def started(limits: ConnectionLimits) -> tuple[RtmpServer, int]:
            server = RtmpServer(registry, StreamKeyChecker(ddb, TABLE), limits=limits)
            servers.append(server)
            return server, await server.start("127.0.0.1", 0)

        yield started
        for server in servers:
            await server.close()
        await registry.close()


def _refused(reason: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value("capturestream_ingest_connections_refused_total", {"reason": reason}) or 0.0
    )


async def _open(port: int, source: str = "127.0.0.1") -> Streams:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _closed_at_once(streams: Streams) -> bool:
    try:
        return await asyncio.wait_for(streams[0].read(), 1.0) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def _publish(port: int, key: str, client: Client) -> Streams:
    reader, writer = await _open(port)
    writer.write(ClientHandshake().c0c1())
    writer.write(ClientHandshake.c2(await reader.readexactly(3073)))
    writer.write(client.command("connect", 1, {"app": "live"}))
    writer.write(client.command("createStream", 2, None))
    writer.write(client.command("publish", 3, None, key, "live", csid=4, stream_id=1))
    received = b""
    async with asyncio.timeout(5):
        while b"NetStream.Publish.Start" not in received:
            received += await reader.read(65536)
    return reader, writer


async def test_pre_auth_connections_are_capped_per_address_but_publishers_are_not(start, publish_target) -> None:
    server, port = await start(ConnectionLimits(max_preauth_per_address=2))
    before = _refused("address_limit")
    held = [await _open(port), await _open(port)]
    await asyncio.sleep(0.1)
    third = await _open(port)
    assert await _closed_at_once(third)
    assert _refused("address_limit") == before + 1
    assert not await _closed_at_once(await _open(port, "127.0.0.2"))  # another address has its own budget
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.2)
    publisher = await _publish(port, publish_target.key, Client())  # publishing frees its pre-auth slot
    more = [await _open(port), await _open(port)]
    assert not any([await _closed_at_once(s) for s in more])
    assert not publisher[0].at_eof()


async def test_the_node_cap_refuses_at_once(start) -> None:
    server, port = await start(ConnectionLimits(max_connections=3))
    before = _refused("node_limit")
    held = [await _open(port, f"127.0.0.{n}") for n in (1, 2, 3)]
    await asyncio.sleep(0.1)
    assert len(server.connections) == 3
    assert await _closed_at_once(await _open(port, "127.0.0.4"))
    assert _refused("node_limit") == before + 1
    assert held


async def test_bytes_before_publishing_are_budgeted(start) -> None:
    _, port = await start(ConnectionLimits(preauth_bytes=8192))
    before = _refused("preauth_bytes")
    reader, writer = await _open(port)
    writer.write(ClientHandshake().c0c1())
    writer.write(ClientHandshake.c2(await reader.readexactly(3073)))
    client = Client()
    ping = client.chunker.message(2, 3, 0, 0, (0).to_bytes(4, "big"))  # Acknowledgement: valid, and useless
    writer.write(ping * (8192 // len(ping)))
    assert await _closed_at_once((reader, writer))
    assert _refused("preauth_bytes") == before + 1


async def test_time_paused_by_the_node_is_not_idle_time(start, publish_target, monkeypatch) -> None:
    """Storage backpressure pauses reading for longer than idle_timeout: the publisher is kept, and dropped only
    after idle_timeout of real silence once reading resumed."""
    server, port = await start(ConnectionLimits(idle_timeout=1.0))
    client = Client()
    reader, writer = await _publish(port, publish_target.key, client)
    await asyncio.sleep(0.2)
    (conn,) = server.connections
    backpressure = [True]
    monkeypatch.setattr(conn, "_storage_backpressure", lambda: backpressure[0])
    writer.write(client.audio(0, AAC_SEQUENCE_HEADER) + client.audio(21, aac_frame()))
    await asyncio.sleep(0.3)
    assert conn.paused
    await asyncio.sleep(2.0)  # twice idle_timeout, paused by us
    assert not conn.transport.is_closing()
    backpressure[0] = False
    await asyncio.sleep(0.3)
    assert not conn.paused and not conn.transport.is_closing()
    assert await asyncio.wait_for(reader.read(), 3.0) == b""  # then real silence: dropped after ~1 s
