"""A hostile RTMP client, run as its own process (``python -m tests.integration.hostile_client``) so that its CPU is
not the node's: 1 MiB AMF commands, slowloris handshakes, 200 idle sockets, garbage bytes and wrong stream keys,
all at once and in loops, from one source address, until ``--seconds`` run out. Prints one JSON line of what
happened (attempts and how they ended) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import struct
from collections import Counter
from collections.abc import Awaitable, Callable

from tests.unit.rtmp.helpers import Client, ClientHandshake

Open = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
MiB = 1024 * 1024
#: When the workers stop starting new attacks (loop time; set by main).
DEADLINE = [0.0]


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(ClientHandshake().c0c1())
    s0s1s2 = await reader.readexactly(3073)
    writer.write(ClientHandshake.c2(s0s1s2))


async def _until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except (ConnectionError, TimeoutError):
        return b""


async def big_command(connect: Open, tally: Counter[str]) -> None:
    """A chunk header announcing a 1 MiB AMF0 command (a strict array of 1 M nulls: the costliest to decode)."""
    reader, writer = await connect()
    try:
        await _handshake(reader, writer)
        body = b"\x02\x00\x07connect\x00" + bytes(8) + b"\x0a" + struct.pack(">I", MiB) + b"\x05" * MiB
        writer.write(b"\x03" + bytes(3) + len(body).to_bytes(3, "big") + b"\x14" + bytes(4))
        for start in range(0, len(body), 128):  # default chunk size 128: type 3 continuations
            writer.write((b"\xc3" if start else b"") + body[start : start + 128])
        await writer.drain()
        await _until_closed(reader, 10)
    finally:
        writer.close()


async def slowloris(connect: Open, tally: Counter[str]) -> None:
    """One byte a second: C0, then C1 dribbled."""
    reader, writer = await connect()
    try:
        writer.write(b"\x03")
        for _ in range(60):
            await asyncio.sleep(1.0)
            writer.write(b"\x00")
            await writer.drain()
            if reader.at_eof():
                break
    finally:
        writer.close()


async def idle_socket(connect: Open, tally: Counter[str]) -> None:
    """Connect and send nothing (one of 200)."""
    reader, writer = await connect()
    try:
        await _until_closed(reader, 30)
    finally:
        writer.close()


async def garbage(connect: Open, tally: Counter[str]) -> None:
    """Random bytes after a valid C0."""
    reader, writer = await connect()
    try:
        writer.write(b"\x03" + random.randbytes(1536))
        await reader.readexactly(3073)
        for _ in range(20):
            writer.write(random.randbytes(random.randint(1, 4096)))
        await writer.drain()
        await _until_closed(reader, 5)
    finally:
        writer.close()


async def wrong_key(connect: Open, tally: Counter[str], channel_id: str) -> None:
    """A full publish with a fresh wrong key for a real channel (each costs the node a key lookup)."""
    reader, writer = await connect()
    client = Client()
    try:
        await _handshake(reader, writer)
        writer.write(client.command("connect", 1, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"}))
        writer.write(client.command("createStream", 2, None))
        key = f"live_{channel_id}_{secrets.token_urlsafe(24)}"
        writer.write(client.command("publish", 3, None, key, "live", csid=4, stream_id=1))
        await writer.drain()
        reply = await _until_closed(reader, 10)
        tally["bad_name_replies"] += b"NetStream.Publish.BadName" in reply
    finally:
        writer.close()


async def _loop(name: str, attack: Callable[..., Awaitable[None]], connect: Open, tally: Counter[str], *args: str):
    loop = asyncio.get_running_loop()
    while loop.time() < DEADLINE[0]:  # not only cancellation: 3.11's wait_for can swallow a cancel
        started = loop.time()
        tally[f"{name}_attempts"] += 1
        try:
            await attack(connect, tally, *args)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            tally[f"{name}_cut_off"] += 1
        if loop.time() - started < 1.0:
            await asyncio.sleep(1.0)  # refused at once: come back in a second (holding sockets, not a SYN flood)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--channel-id", required=True)
    parser.add_argument("--source", default="127.0.0.2")
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()

    def connect() -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        return asyncio.open_connection("127.0.0.1", args.port, local_addr=(args.source, 0))

    tally: Counter[str] = Counter()
    workers = [
        *(_loop("big_command", big_command, connect, tally) for _ in range(4)),
        *(_loop("slowloris", slowloris, connect, tally) for _ in range(20)),
        *(_loop("idle_socket", idle_socket, connect, tally) for _ in range(200)),
        *(_loop("garbage", garbage, connect, tally) for _ in range(4)),
        *(_loop("wrong_key", wrong_key, connect, tally, args.channel_id) for _ in range(4)),
    ]
    DEADLINE[0] = asyncio.get_running_loop().time() + args.seconds
    tasks = [asyncio.ensure_future(worker) for worker in workers]
    await asyncio.sleep(args.seconds)
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=3)
    print(json.dumps(dict(tally)), flush=True)
    os._exit(0)  # whatever socket is still closing: the report is out, the attack is over


if __name__ == "__main__":
    asyncio.run(main())
