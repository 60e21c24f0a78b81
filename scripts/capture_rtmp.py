"""Record what real RTMP publishers send, answered by our own sans-IO core.

Runs a one-connection RTMP server on 127.0.0.1 (a random port) that answers with
``ingest_node.rtmp.Connection`` (accepting the publish), starts a real client against it and writes every
client→server byte to ``tests/fixtures/rtmp/<client>_publish.bin``. The fixtures are the ground truth of the
replay tests in ``tests/unit/rtmp/test_fixtures.py``.

Clients (each publishes about 2 s of 320x240@15 H.264 + AAC to ``rtmp://127.0.0.1:PORT/live/testkey``):

- ``ffmpeg``: FFmpeg's native RTMP protocol (``-f flv``).
- ``rtmpsink``: GStreamer's librtmp sink (librtmp is the RTMP family OBS uses).
- ``rtmp2sink``: GStreamer's own RTMP implementation.

Usage::

    .venv/bin/python scripts/capture_rtmp.py            # all three
    .venv/bin/python scripts/capture_rtmp.py ffmpeg --out /tmp/fixtures
    .venv/bin/python scripts/capture_rtmp.py --describe tests/fixtures/rtmp/*.bin   # what a capture contains
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest_node import rtmp  # noqa: E402
from ingest_node.rtmp.buffer import ReceiveBuffer  # noqa: E402
from ingest_node.rtmp.chunks import ChunkReader  # noqa: E402
from ingest_node.rtmp.handshake import FP_KEY, find_digest  # noqa: E402
from ingest_node.rtmp.messages import CommandMessage, DataMessage, MessageType  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "rtmp"
URL_PATH = "live/testkey"
_VIDEO = "video/x-raw,width=320,height=240,framerate=15/1"
_GST_SOURCES = (
    f"videotestsrc is-live=true num-buffers=30 ! {_VIDEO} ! x264enc key-int-max=15 tune=zerolatency ! "
    "video/x-h264,profile=main ! h264parse ! queue ! mux. "
    "audiotestsrc is-live=true num-buffers=86 ! audioconvert ! avenc_aac ! aacparse ! queue ! mux. "
    "flvmux name=mux streamable=true"
)


def client_argv(client: str, port: int) -> list[str]:
    """The command line of ``client`` publishing to our server on ``port``."""
    url = f"rtmp://127.0.0.1:{port}/{URL_PATH}"
    if client == "ffmpeg":
        return [
            *("ffmpeg", "-hide_banner", "-loglevel", "error", "-re"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15", "-f", "lavfi", "-i", "sine"),
            *("-t", "2", "-c:v", "libx264", "-g", "15", "-c:a", "aac", "-f", "flv", url),
        ]
    sink = f'rtmpsink location="{url} live=1"' if client == "rtmpsink" else f"rtmp2sink location={url}"
    return ["gst-launch-1.0", "-q", "-e", *f"{_GST_SOURCES} ! {sink}".split()]


class Recorder(asyncio.Protocol):
    """Answers one publisher with the sans-IO core and keeps the bytes it sent."""

    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self.core = rtmp.Connection()
        self.received = bytearray()
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.log: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        self._handle(self.core.receive_data(data))

    def eof_received(self) -> bool:
        self._handle(self.core.receive_data(b""))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.received))

    def _handle(self, events: list[rtmp.Event]) -> None:
        for event in events:
            self.log.append(type(event).__name__)
            if isinstance(event, rtmp.PublishRequested):
                self.core.accept_publish(event.stream_id)
                self._handle(self.core.pending_events())
        out = self.core.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)


async def capture(client: str, out_dir: Path) -> Path:
    """Run ``client`` against a fresh server and write its bytes to ``<out_dir>/<client>_publish.bin``."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    recorders: list[Recorder] = []

    def factory() -> Recorder:
        recorders.append(Recorder(done))
        return recorders[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(*client_argv(client, port))
    try:
        data = await asyncio.wait_for(done, timeout=30)
        await asyncio.wait_for(proc.wait(), timeout=10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        server.close()
    path = out_dir / f"{client}_publish.bin"
    path.write_bytes(data)
    print(f"{client}: {len(data)} bytes -> {path} (exit {proc.returncode}); events: {summarize(recorders[0].log)}")
    return path


def summarize(names: list[str]) -> str:
    """Run-length summary of event names, e.g. ``AudioReceived×30``."""
    out: list[str] = []
    for name in names:
        if out and out[-1].split("×")[0] == name:
            count = int(out[-1].split("×")[1]) + 1 if "×" in out[-1] else 2
            out[-1] = f"{name}×{count}"
        else:
            out.append(name)
    return ", ".join(out)


def describe(path: Path) -> None:
    """Print the handshake kind and every non-media message of a capture (stream keys masked)."""
    data = path.read_bytes()
    c1 = data[1:1537]
    print(f"{path.name}: C0={data[0]} C1 version={tuple(c1[4:8])} digest={find_digest(c1, FP_KEY[:30])}")
    reader = ChunkReader(max_message_size=1 << 24, max_inflight_bytes=1 << 25)
    buf, media = ReceiveBuffer(), {MessageType.AUDIO: 0, MessageType.VIDEO: 0}
    buf.feed(data[3073:])
    while (msg := reader.next_message(buf)) is not None:
        where = f"csid={msg.chunk_stream_id} msid={msg.stream_id} ts={msg.timestamp}"
        if msg.type_id in media:
            media[msg.type_id] += 1
        elif msg.type_id == MessageType.COMMAND_AMF0:
            cmd = CommandMessage.parse(msg.payload)
            values = ["<key>" if value == "testkey" else value for value in cmd.values]
            print(f"  {cmd.name}[{cmd.transaction_id:g}] {values} {where}")
        elif msg.type_id == MessageType.DATA_AMF0:
            print(f"  data {list(DataMessage.parse(msg.payload).values)[:2]} {where}")
        else:
            if msg.type_id == MessageType.SET_CHUNK_SIZE:
                reader.set_chunk_size(int.from_bytes(msg.payload, "big"))
            print(f"  {MessageType(msg.type_id).name} {msg.payload.hex()} {where}")
    print(f"  audio messages: {media[MessageType.AUDIO]}, video messages: {media[MessageType.VIDEO]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clients", nargs="*", default=["ffmpeg", "rtmpsink", "rtmp2sink"])
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--describe", nargs="+", type=Path, metavar="BIN", help="describe captures instead")
    args = parser.parse_args()
    if args.describe:
        for path in args.describe:
            describe(path)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for client in args.clients:
        asyncio.run(capture(client, args.out))


if __name__ == "__main__":
    main()
