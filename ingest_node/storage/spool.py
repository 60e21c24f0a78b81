"""The ingest node's on-disk spool: finished objects S3 could not take yet, kept in order until it can.

:class:`~ingest_node.storage.stream_queue.StreamUploadQueue` writes an object here when S3 is failing for its stream,
or when the stream's (or the node's) in-memory upload budget is spent, and stores spooled objects in order when
S3 answers again. What a node leaves here is uploaded by the next node started on the same directory.

Layout and rules:
- ``<dir>/<stream>/<seq>.obj``, ``seq`` a 12-digit per-stream sequence number given when the object was queued:
  a stream's objects are stored in ``seq`` order whether they waited in memory or here, so a segment is always
  stored before the playlist that names it (the order :mod:`ingest_node.sessions.broadcast` queues them in).
- One file per object: a one-line JSON header (key, content type, cache control, ``x-amz-meta-*`` metadata,
  creation time, body size, CRC-32) then the body — everything the PUT needs. Written to ``.<seq>.tmp``,
  fsynced, then renamed, so a crash leaves either a whole file or a ``.tmp`` (removed at the next start, logged).
  A file whose header, size or CRC is wrong is renamed ``*.bad`` (logged, kept for the operator, not uploaded).
- Supersede: a newer version of an object the caller marks ``supersedes`` (the live playlist, rewritten after
  every segment) replaces the older spooled version of the same key. The newer version sits behind every segment
  it names, so dropping the older one never lets a playlist name a missing segment; it only skips intermediate
  states nobody can watch any more. Segments and manifests are never superseded.
- Size limit (``max_bytes``, on-disk bytes): a full spool refuses new objects (:meth:`Spool.write` returns None);
  nothing spooled is dropped for space. The caller then keeps the object in memory or makes the publisher wait.
- Age limit (``max_age``): a stream whose **newest** spooled object is older than that (it stopped producing long
  ago; S3 has been unreachable or refusing for that long) is dropped whole, counted in
  ``spool_dropped_total{reason="age"}``. Whole streams only, so what remains never names a dropped segment.
- Disk I/O runs in a worker thread (``asyncio.to_thread``); the index lives in memory and is rebuilt by
  :meth:`Spool.open` from the files.
- One process uses a directory at a time: :meth:`Spool.open` takes an exclusive ``flock`` on ``<dir>/node.lock``
  (which holds the owner's pid) until :meth:`Spool.close`, and raises :class:`SpoolInUse` when another process has
  it. Two nodes on one directory would upload, supersede and delete each other's objects; ``flock`` is released
  by the kernel when its process dies, so a crashed node never leaves a stale lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import heapq
import json
import logging
import os
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .. import metrics
from .s3_put import Upload

log = logging.getLogger(__name__)

_STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_OBJECT_FILE = re.compile(r"(\d{12})\.obj")
_MAX_HEADER = 64 * 1024
#: The directory's lock file (not a stream: stream names are directories).
LOCK_FILE = "node.lock"


class SpoolInUse(RuntimeError):
    """Another process holds the spool directory (another node started with the same ``SPOOL_DIR``)."""


@dataclass(eq=False)
class SpooledObject:
    """One object on disk (its body stays there until :meth:`Spool.read`)."""

    stream: str
    seq: int
    request: Upload
    #: Wall-clock time the object was queued (survives a restart, unlike a monotonic clock).
    created: float
    size: int
    crc: int
    path: Path
    #: Bytes on disk (header + body), what ``max_bytes`` counts.
    disk: int
    supersedes: bool = False
    #: Being uploaded: not superseded or expired under the uploader's feet.
    held: bool = field(default=False, repr=False)


@dataclass
class _Stream:
    objects: dict[int, SpooledObject] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # heap of seqs (stale entries skipped lazily)
    latest: dict[str, int] = field(default_factory=dict)  # key -> seq of its superseding version
    next_seq: int = 0
    newest: float = 0.0


class Spool:
    """A bounded directory of objects waiting for S3, ordered per stream."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int, max_age: float) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.bytes = 0
        self._streams: dict[str, _Stream] = {}
        self._count = 0
        self._write_failing = False
        self._lock_fd: int | None = None

    # -- index -------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def streams(self) -> list[str]:
        """Streams with objects spooled, the one holding the oldest object first."""
        heads = [(self.head(name), name) for name in self._streams]
        return [name for head, name in sorted(heads, key=lambda pair: pair[0].created if pair[0] else 0.0) if head]

    def count(self, stream: str) -> int:
        """Objects spooled for ``stream``."""
        entry = self._streams.get(stream)
        return len(entry.objects) if entry else 0

    def head(self, stream: str) -> SpooledObject | None:
        """The stream's spooled object with the lowest sequence number."""
        entry = self._streams.get(stream)
        if entry is None:
            return None
        while entry.order and entry.order[0] not in entry.objects:
            heapq.heappop(entry.order)
        return entry.objects[entry.order[0]] if entry.order else None

    def next_seq(self, stream: str) -> int:
        """The first sequence number after everything spooled for ``stream`` (0 for a new one)."""
        entry = self._streams.get(stream)
        return entry.next_seq if entry else 0

    def has_room(self, size: int) -> bool:
        """Whether an object of ``size`` body bytes fits under ``max_bytes``."""
        return self.bytes + size + 1024 <= self.max_bytes

    def oldest_age(self) -> float:
        """Seconds since the oldest spooled object was queued (0 when empty)."""
        heads = [head.created for name in self._streams if (head := self.head(name)) is not None]
        return max(0.0, time.time() - min(heads)) if heads else 0.0

    # -- files -------------------------------------------------------------------------------------------------

    def open(self) -> list[str]:
        """Create and lock the directory, index what a previous node left; returns the streams found, oldest first.

        Raises:
            SpoolInUse: another process holds the directory.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        metrics.watch(metrics.SPOOL_OLDEST_SECONDS, self.oldest_age)
        for stream_dir in sorted(self.directory.iterdir()):
            if stream_dir.is_dir() and _STREAM_NAME.fullmatch(stream_dir.name):
                self._scan(stream_dir)
                _remove_dir(stream_dir)
        self._publish()
        found = self.streams()
        if found:
            log.warning(
                "spool holds objects from a previous run",
                extra={"streams": len(found), "objects": self._count, "bytes": self.bytes},
            )
        return found

    def close(self) -> None:
        """Release the directory (idempotent); what is spooled stays for the next :meth:`open`."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only descriptor releases the flock
            self._lock_fd = None

    def _lock(self) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SpoolInUse(
                f"spool directory {self.directory} is in use by another process (pid {owner}): "
                "give each ingest node its own SPOOL_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _scan(self, stream_dir: Path) -> None:
        for path in sorted(stream_dir.iterdir()):
            if path.name.endswith(".tmp"):
                log.warning("spool: removing a partial write", extra={"path": str(path)})
                path.unlink(missing_ok=True)
                continue
            match = _OBJECT_FILE.fullmatch(path.name)
            if match is None:
                continue
            try:
                spooled = _read_header(stream_dir.name, int(match.group(1)), path)
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.error("spool: ignoring a corrupt file", extra={"path": str(path), "error": str(error)})
                _set_aside(path)
                continue
            self._add(spooled)

    async def write(self, stream: str, seq: int, request: Upload, *, supersedes: bool = False) -> SpooledObject | None:
        """Store one object under ``stream`` at ``seq``; None when the spool is full (nothing written).

        Args:
            stream: the queue's name (a session id); letters, digits, ``_.-``.
            seq: the object's place in its stream.
            request: what the PUT needs.
            supersedes: a newer version of this key replaces an older spooled one (live playlists).
        """
        if not _STREAM_NAME.fullmatch(stream):
            raise ValueError(f"bad spool stream name {stream!r}")
        if not self.has_room(len(request.body)):
            return None
        created = time.time() - (time.monotonic() - request.queued_at)
        path = self.directory / stream / f"{seq:012d}.obj"
        try:
            spooled = await asyncio.to_thread(_write_file, path, stream, seq, request, created, supersedes)
        except OSError as error:
            if not self._write_failing:
                log.error("spool: cannot write (disk full?)", extra={"path": str(path), "error": str(error)})
            self._write_failing = True
            return None
        self._write_failing = False
        self._add(spooled)
        self._publish()
        return spooled

    async def read(self, spooled: SpooledObject) -> bytes | None:
        """The object's body; None (the file set aside and logged) when it is gone or corrupt."""
        try:
            body = await asyncio.to_thread(_read_body, spooled)
        except (OSError, ValueError) as error:
            log.error("spool: dropping an unreadable object", extra={"key": spooled.request.key, "error": str(error)})
            metrics.SPOOL_DROPPED.labels(reason="corrupt").inc()
            self._forget(spooled)
            await asyncio.to_thread(_set_aside, spooled.path)
            return None
        return body

    async def remove(self, spooled: SpooledObject) -> None:
        """Forget an object (stored, or given up on) and delete its file."""
        self._forget(spooled)
        await asyncio.to_thread(spooled.path.unlink, missing_ok=True)

    def expire(self, now: float | None = None) -> int:
        """Drop every stream whose newest object is older than ``max_age``; returns the objects dropped."""
        cutoff = (now if now is not None else time.time()) - self.max_age
        dropped = 0
        for name, entry in list(self._streams.items()):
            if entry.objects and entry.newest < cutoff:
                victims = [spooled for spooled in entry.objects.values() if not spooled.held]
                log.error(
                    "spool: dropping a stream past the age limit",
                    extra={"stream": name, "objects": len(victims), "max_age": self.max_age},
                )
                for spooled in victims:
                    self._forget(spooled)
                    spooled.path.unlink(missing_ok=True)
                dropped += len(victims)
        if dropped:
            metrics.SPOOL_DROPPED.labels(reason="age").inc(dropped)
        return dropped

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _add(self, spooled: SpooledObject) -> None:
        entry = self._streams.setdefault(spooled.stream, _Stream())
        replaced = None
        if spooled.supersedes:
            replaced = entry.objects.get(entry.latest.get(spooled.request.key, -1))
            if replaced is not None and replaced.seq > spooled.seq:  # already superseded (a late spill from memory)
                spooled.path.unlink(missing_ok=True)
                return
            entry.latest[spooled.request.key] = spooled.seq
        entry.objects[spooled.seq] = spooled
        heapq.heappush(entry.order, spooled.seq)
        entry.next_seq = max(entry.next_seq, spooled.seq + 1)
        entry.newest = max(entry.newest, spooled.created)
        self.bytes += spooled.disk
        self._count += 1
        if replaced is not None and not replaced.held:
            self._forget(replaced)
            replaced.path.unlink(missing_ok=True)

    def _forget(self, spooled: SpooledObject) -> None:
        entry = self._streams.get(spooled.stream)
        if entry is None or entry.objects.get(spooled.seq) is not spooled:
            return
        del entry.objects[spooled.seq]
        if entry.latest.get(spooled.request.key) == spooled.seq:
            del entry.latest[spooled.request.key]
        self.bytes -= spooled.disk
        self._count -= 1
        if not entry.objects:  # its (empty) directory is removed at the next open(), never under a writer
            del self._streams[spooled.stream]
        self._publish()

    def _publish(self) -> None:
        metrics.SPOOL_OBJECTS.set(self._count)
        metrics.SPOOL_BYTES.set(self.bytes)


def _write_file(path: Path, stream: str, seq: int, request: Upload, created: float, supersedes: bool) -> SpooledObject:
    header = {
        "key": request.key,
        "content_type": request.content_type,
        "cache_control": request.cache_control,
        "metadata": request.metadata,
        "created": created,
        "size": len(request.body),
        "crc32": zlib.crc32(request.body),
        "supersedes": supersedes,
    }
    line = json.dumps(header, separators=(",", ":")).encode() + b"\n"
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp")
    with open(tmp, "wb") as file:
        file.write(line)
        file.write(request.body)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    return SpooledObject(
        stream,
        seq,
        request,
        created,
        len(request.body),
        header["crc32"],
        path,
        len(line) + len(request.body),
        supersedes,
    )


def _read_header(stream: str, seq: int, path: Path) -> SpooledObject:
    with open(path, "rb") as file:
        line = file.readline(_MAX_HEADER)
    if not line.endswith(b"\n"):
        raise ValueError("no header line")
    header = json.loads(line)
    size = int(header["size"])
    disk = path.stat().st_size
    if disk != len(line) + size:
        raise ValueError(f"{disk} bytes on disk, header says {len(line) + size}")
    metadata = header["metadata"]
    request = Upload(
        str(header["key"]),
        b"",  # read when uploaded
        str(header["content_type"]),
        str(header["cache_control"]),
        metadata=None if metadata is None else {str(k): str(v) for k, v in metadata.items()},
    )
    return SpooledObject(
        stream,
        seq,
        request,
        float(header["created"]),
        size,
        int(header["crc32"]),
        path,
        disk,
        bool(header.get("supersedes", False)),
    )


def _read_body(spooled: SpooledObject) -> bytes:
    with open(spooled.path, "rb") as file:
        file.readline(_MAX_HEADER)
        body = file.read()
    if len(body) != spooled.size or zlib.crc32(body) != spooled.crc:
        raise ValueError("body does not match its header (size or CRC-32)")
    return body


def _set_aside(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rename(path.with_name(path.name + ".bad"))


def _remove_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()  # only when empty (a .bad file keeps it)
