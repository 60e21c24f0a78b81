"""The disk spool alone: order per stream, playlist supersede, size and age limits, restart scan, bad files, the
directory lock."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest_node import metrics
from ingest_node.storage.spool import LOCK_FILE, Spool, SpoolInUse
from ingest_node.storage.uploader import MEDIA, PLAYLIST, Upload

MIB = 1024 * 1024


def _upload(key: str, body: bytes = b"x" * 100, kind: tuple[str, str] = MEDIA, **meta: str) -> Upload:
    return Upload(key, body, *kind, metadata=meta or None)


_opened: list[Spool] = []


@pytest.fixture(autouse=True)
def _close_spools() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def _spool(path: Path, max_bytes: int = 64 * MIB, max_age: float = 3600) -> Spool:
    spool = Spool(path, max_bytes=max_bytes, max_age=max_age)
    _opened.append(spool)
    spool.open()
    return spool


def _spool_unopened(path: Path) -> Spool:
    spool = Spool(path, max_bytes=64 * MIB, max_age=3600)
    _opened.append(spool)
    return spool


async def _drain(spool: Spool, stream: str) -> list[tuple[str, bytes]]:
    out = []
    while (head := spool.head(stream)) is not None:
        body = await spool.read(head)  # None: unreadable, set aside by the spool
        if body is not None:
            out.append((head.request.key, body))
            await spool.remove(head)
    return out


async def test_objects_come_back_in_sequence_order_per_stream_with_their_headers(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for seq in (2, 0, 1):  # a spill from memory can arrive after later objects went straight to disk
        await spool.write("s1", seq, _upload(f"seg{seq}", bytes([seq]) * 10, epoch=str(seq)))
    await spool.write("s2", 0, _upload("other"))
    head = spool.head("s1")
    assert head is not None and head.request.metadata == {"epoch": "0"}
    assert (head.request.content_type, head.request.cache_control) == MEDIA
    assert await _drain(spool, "s1") == [(f"seg{n}", bytes([n]) * 10) for n in range(3)]
    assert spool.streams() == ["s2"] and len(spool) == 1


async def test_a_newer_playlist_replaces_the_older_spooled_one_but_never_a_segment(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    await spool.write("s", 0, _upload("seg0"))
    await spool.write("s", 1, _upload("index.m3u8", b"v1", PLAYLIST), supersedes=True)
    await spool.write("s", 4, _upload("index.m3u8", b"v3", PLAYLIST), supersedes=True)
    await spool.write("s", 3, _upload("index.m3u8", b"v2", PLAYLIST), supersedes=True)  # spilled late from memory
    await spool.write("s", 2, _upload("seg1"))
    assert await _drain(spool, "s") == [("seg0", b"x" * 100), ("seg1", b"x" * 100), ("index.m3u8", b"v3")]
    assert sorted(p.name for p in tmp_path.rglob("*")) == [LOCK_FILE, "s"]  # replaced versions left no file


async def test_a_held_playlist_is_not_replaced_under_the_uploader(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    first = await spool.write("s", 0, _upload("index.m3u8", b"v1", PLAYLIST), supersedes=True)
    assert first is not None
    first.held = True
    await spool.write("s", 1, _upload("index.m3u8", b"v2", PLAYLIST), supersedes=True)
    assert spool.count("s") == 2 and await spool.read(first) == b"v1"


async def test_a_full_spool_refuses_new_objects_and_drops_nothing(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=12_000)
    stored = [await spool.write("s", n, _upload(f"k{n}", b"x" * 3000)) for n in range(4)]
    assert [s is not None for s in stored] == [True, True, True, False]
    assert spool.bytes <= 12_000 and spool.count("s") == 3
    assert metrics.SPOOL_BYTES._value.get() == spool.bytes and metrics.SPOOL_OBJECTS._value.get() == 3
    assert spool.has_room(10) and not spool.has_room(3000)


async def test_a_stream_past_the_age_limit_is_dropped_whole_and_counted(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_age=60)
    dropped_before = metrics.SPOOL_DROPPED.labels(reason="age")._value.get()
    old = Upload("old/seg", b"x", *MEDIA, queued_at=time.monotonic() - 120)
    await spool.write("stale", 0, old)
    await spool.write("stale", 1, Upload("old/list", b"x", *PLAYLIST, queued_at=time.monotonic() - 90))
    await spool.write("live", 0, Upload("new/seg0", b"x", *MEDIA, queued_at=time.monotonic() - 120))
    await spool.write("live", 1, _upload("new/seg1"))  # its newest is fresh: the stream is still producing
    assert 119 < spool.oldest_age() < 130
    assert spool.expire() == 2
    assert spool.streams() == ["live"] and spool.count("live") == 2
    assert metrics.SPOOL_DROPPED.labels(reason="age")._value.get() == dropped_before + 2
    assert not list((tmp_path / "stale").glob("*.obj"))


async def test_a_restart_finds_what_the_predecessor_left_in_order(tmp_path: Path) -> None:
    first = _spool(tmp_path)
    for seq in range(5):
        await first.write("a", seq, _upload(f"a{seq}", bytes([seq]) * 50))
    await first.write("b", 7, _upload("b7"))
    await first.write("a", 5, _upload("index.m3u8", b"v1", PLAYLIST), supersedes=True)
    await first.write("a", 6, _upload("index.m3u8", b"v2", PLAYLIST), supersedes=True)
    first.close()
    second = _spool_unopened(tmp_path)
    assert second.open() == ["a", "b"]  # the stream holding the oldest object first
    assert second.next_seq("b") == 8 and len(second) == 7 and second.bytes == first.bytes
    assert await _drain(second, "a") == [*((f"a{n}", bytes([n]) * 50) for n in range(5)), ("index.m3u8", b"v2")]


async def test_partial_and_corrupt_files_are_ignored_with_a_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _spool(tmp_path)
    for seq in range(4):
        await first.write("s", seq, _upload(f"k{seq}", b"y" * 100))
    stream = tmp_path / "s"
    (stream / ".000000000009.tmp").write_bytes(b"half a write")  # a crash between write and rename
    truncated = stream / "000000000001.obj"
    truncated.write_bytes(truncated.read_bytes()[:-10])
    (stream / "000000000002.obj").write_bytes(b"not json\n" + b"y" * 100)
    flipped = stream / "000000000003.obj"
    data = bytearray(flipped.read_bytes())
    data[-1] ^= 0xFF  # right size, wrong content: caught by the CRC when read
    flipped.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING, logger="ingest_node.storage.spool")
    first.close()
    second = _spool(tmp_path)
    assert second.count("s") == 2 and not (stream / ".000000000009.tmp").exists()
    assert await _drain(second, "s") == [("k0", b"y" * 100)]  # k3 failed its CRC on read
    messages = [record.getMessage() for record in caplog.records]
    assert "spool: removing a partial write" in messages
    assert messages.count("spool: ignoring a corrupt file") == 2
    assert "spool: dropping an unreadable object" in messages
    assert sorted(p.name for p in stream.iterdir()) == [
        "000000000001.obj.bad",
        "000000000002.obj.bad",
        "000000000003.obj.bad",
    ]


async def test_files_carry_everything_the_put_needs(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spooled = await spool.write("s", 3, _upload("live/p/s/seg_00000003.m4s", b"body", epoch="1"))
    assert spooled is not None and spooled.path == tmp_path / "s" / "000000000003.obj"
    header, body = spooled.path.read_bytes().split(b"\n", 1)
    fields = json.loads(header)
    assert body == b"body" and fields["key"] == "live/p/s/seg_00000003.m4s"
    assert (fields["content_type"], fields["cache_control"], fields["metadata"]) == (*MEDIA, {"epoch": "1"})


def test_stream_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    with pytest.raises(ValueError):
        import asyncio

        asyncio.run(spool.write("../etc", 0, _upload("k")))


def test_a_second_spool_on_the_same_directory_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    """Two nodes on one SPOOL_DIR would upload and delete each other's objects: the second one fails to open."""
    first = _spool(tmp_path)
    second = _spool_unopened(tmp_path)
    with pytest.raises(SpoolInUse, match=rf"{tmp_path} is in use by another process \(pid \d+\).*own SPOOL_DIR"):
        second.open()
    first.close()
    assert second.open() == []  # the lock file is not a stream
    assert (tmp_path / LOCK_FILE).read_text().strip().isdigit()


def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    """Another process (another node) holding the directory is refused with its pid; once it is gone (even
    SIGKILLed: no clean close) the directory opens, with nothing stale left to clear."""
    script = (
        "import sys\n"
        "from ingest_node.storage.spool import Spool\n"
        f"Spool({str(tmp_path)!r}, max_bytes=1 << 20, max_age=60).open()\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(SpoolInUse, match=rf"pid {holder.pid}\b"):
            _spool(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert _spool_unopened(tmp_path).open() == []
