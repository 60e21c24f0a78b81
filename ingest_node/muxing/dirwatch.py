"""Knowing when ffmpeg replaced its playlist: inotify on the working folder, or a stat check without it.

ffmpeg 5.1's HLS muxer closes a segment, writes ``index.m3u8.tmp`` and renames it over ``index.m3u8``; once that
rename happened, every segment the playlist names is complete. inotify (through libc with ctypes: no extra
dependency) reports the rename without polling; where inotify is unavailable, the playlist's stat signature is
compared on each call instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import struct
from pathlib import Path

log = logging.getLogger(__name__)


class PlaylistWatch:
    """Tells whether ffmpeg put a new playlist in place since the last call (see the module docstring)."""

    _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_Q_OVERFLOW = 0x08, 0x80, 0x4000
    _EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len, then the name

    def __init__(self, playlist: Path) -> None:
        self._path = playlist
        self._name = os.fsencode(playlist.name)
        self._dirty = False
        self._signature: tuple[int, int, int] | None = None
        self._loop = asyncio.get_running_loop()
        try:
            self._fd = inotify_watch(playlist.parent, self._IN_CLOSE_WRITE | self._IN_MOVED_TO)
        except OSError as error:
            log.info("inotify unavailable (%s): checking the playlist's stat on each call", error)
            self._fd = -1
        else:
            self._loop.add_reader(self._fd, self._on_events)

    @property
    def evented(self) -> bool:
        """True when inotify reports the renames."""
        return self._fd >= 0

    def changed(self) -> bool:
        """True once after each new playlist."""
        if self._fd >= 0:
            dirty, self._dirty = self._dirty, False
            return dirty
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            return False
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        dirty, self._signature = signature != self._signature, signature
        return dirty

    def close(self) -> None:
        """Stop watching."""
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _on_events(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        pos = 0
        while pos + self._EVENT.size <= len(data):
            _, mask, _, length = self._EVENT.unpack_from(data, pos)
            name = data[pos + self._EVENT.size : pos + self._EVENT.size + length].rstrip(b"\0")
            if name == self._name or mask & self._IN_Q_OVERFLOW:
                self._dirty = True
            pos += self._EVENT.size + length


def inotify_watch(folder: Path, mask: int) -> int:
    """A non-blocking inotify descriptor watching ``folder`` (inotify(7)); OSError where there is no inotify."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError, TypeError) as error:
        raise OSError(f"no inotify: {error}") from error
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    fd = init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    if add_watch(fd, os.fsencode(folder), mask) < 0:
        errno = ctypes.get_errno()
        os.close(fd)
        raise OSError(errno, f"inotify_add_watch({folder}) failed")
    return fd
