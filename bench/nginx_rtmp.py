"""nginx-rtmp, the reference ingest of ``bench.ingest``: Debian ``nginx`` + ``libnginx-mod-rtmp``, HLS to disk.

The bench starts and stops it: a temporary prefix holds ``nginx.conf``, the pid file, the error log and the HLS
folder. ``daemon off``, one worker (nginx-rtmp's live applications need all publishers in one worker), listening on
a loopback port, ``application live`` with ``hls on; hls_fragment 1s; hls_playlist_length 6s`` and otherwise the
module's defaults (``hls_cleanup on``, sequential fragment names ``<key>-<n>.ts``, playlist ``<key>.m3u8``). When
the bench runs as root, the worker runs as ``nobody`` (as in the reference measurements) and the HLS folder is
world-writable.

``python -m bench.nginx_rtmp`` runs the same configuration in the foreground until Ctrl-C (for poking at it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODULES_AVAILABLE = Path("/usr/share/nginx/modules-available")
MODULE_DIRS = (Path("/usr/lib/nginx/modules"), Path("/usr/share/nginx/modules"))
STOP_TIMEOUT = 10.0
READY_TIMEOUT = 10.0

CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
{user}pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            hls on;
            hls_path {hls};
            hls_fragment 1s;
            hls_playlist_length 6s;
        }}
    }}
}}
"""


def find_module() -> Path | None:
    """The installed ``ngx_rtmp_module.so`` (Debian's path, or the one its modules-available snippet names)."""
    candidates = [d / "ngx_rtmp_module.so" for d in MODULE_DIRS]
    snippet = MODULES_AVAILABLE / "mod-rtmp.conf"
    if snippet.exists():
        match = re.search(r"load_module\s+(\S+?);", snippet.read_text())
        if match:
            named = Path(match.group(1))
            candidates.insert(0, named if named.is_absolute() else Path("/usr/share/nginx") / named)
    return next((path.resolve() for path in candidates if path.exists()), None)


def missing() -> str | None:
    """Why nginx-rtmp cannot run here (None when it can)."""
    if shutil.which("nginx") is None:
        return "nginx is not installed (apt-get install nginx libnginx-mod-rtmp)"
    if find_module() is None:
        return "the nginx RTMP module is not installed (apt-get install libnginx-mod-rtmp)"
    return None


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (nginx cannot report the port it bound)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class NginxRtmp:
    """One nginx-rtmp instance under ``prefix`` (a directory the caller owns)."""

    name = "nginx-rtmp"

    def __init__(self, prefix: Path, port: int | None = None, traverse_root: Path | None = None) -> None:
        """``traverse_root``: the outermost folder the caller owns above ``prefix``; as root, the folders from
        ``prefix`` up to it get ``o+x`` so the worker (``nobody``) can reach the HLS folder."""
        self.prefix = prefix
        self.traverse_root = traverse_root or prefix
        self.port = port or free_port()
        self.hls_dir = prefix / "hls"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The master process."""
        assert self.process is not None
        return self.process.pid

    def url(self, stream: str) -> str:
        """Where a publisher sends ``stream``."""
        return f"rtmp://127.0.0.1:{self.port}/live/{stream}"

    def playlist_path(self, stream: str) -> Path:
        """The live playlist nginx-rtmp writes for ``stream`` (``hls_nested off``)."""
        return self.hls_dir / f"{stream}.m3u8"

    def config(self) -> str:
        """The nginx.conf text."""
        module = find_module()
        if module is None:
            raise RuntimeError(missing())
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        return CONF.format(module=module, user=user, prefix=self.prefix, port=self.port, hls=self.hls_dir)

    def start(self) -> None:
        """Write the configuration, start nginx and wait until it accepts connections."""
        self.hls_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the worker runs as nobody: it must reach and write the HLS folder
            for folder in (self.prefix, *self.prefix.parents):
                folder.chmod(folder.stat().st_mode | 0o711)
                if folder == self.traverse_root or folder == folder.parent:
                    break
            self.hls_dir.chmod(0o777)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.config())
        log = (self.prefix / "stderr.log").open("wb")
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not listen on {self.port} within {READY_TIMEOUT:.0f} s")
            time.sleep(0.01)

    def stop(self) -> int | None:
        """SIGTERM (fast shutdown), SIGKILL of its process group after the timeout; the master's exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the error log and of nginx's own stderr."""
        out = []
        for name in ("stderr.log", "error.log"):
            path = self.prefix / name
            if path.exists():
                out.extend(path.read_text(errors="replace").strip().splitlines()[-lines:])
        return "\n".join(out)


class FileSource:
    """An :class:`~bench._ingest_hls.HlsSource` reading nginx-rtmp's HLS folder directly from disk."""

    def __init__(self, nginx: NginxRtmp, stream: str) -> None:
        self._playlist = nginx.playlist_path(stream)
        self._folder = nginx.hls_dir

    async def ready(self) -> None:
        """The playlist's path is known from the start."""

    async def playlist(self) -> str | None:
        """The playlist's text (nginx writes a temporary file and renames it), or None before the first one."""
        try:
            return self._playlist.read_text()
        except FileNotFoundError:
            return None

    async def segment(self, uri: str) -> int | None:
        """Read the fragment file completely."""
        try:
            return len((self._folder / uri).read_bytes())
        except FileNotFoundError:
            return None


class NginxSubject:
    """nginx-rtmp as a subject of ``bench.ingest``: one instance per run, publishers on ``live/s<i>``."""

    name = "nginx-rtmp"
    node_roles = frozenset({"master", "worker", "cache", "other"})  # nginx is the whole ingest

    def __init__(self, scratch: Path, traverse_root: Path | None = None) -> None:
        self.scratch = scratch
        self.nginx = NginxRtmp(scratch / "nginx", traverse_root=traverse_root or scratch)
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self.list_calls = 0
        self.streams = 0

    @property
    def pid(self) -> int:
        """The master process, root of the measured tree."""
        return self.nginx.pid

    def classify(self, pid: int, cmdline: str) -> str:
        """Role of a process of the tree: ``master``, ``worker``, ``cache`` (manager/loader) or ``other``."""
        if pid == self.pid:
            return "master"
        if "worker process" in cmdline:
            return "worker"
        return "cache" if "cache" in cmdline else "other"

    async def start(self, n: int) -> None:
        """Start nginx (publishers need no setup: any stream name is accepted)."""
        started = time.monotonic()
        await asyncio.to_thread(self.nginx.start)
        self.streams = n
        self.start_seconds = time.monotonic() - started

    def url(self, index: int) -> str:
        """The publish URL of stream ``index``."""
        return self.nginx.url(f"s{index}")

    def source(self, index: int) -> FileSource:
        """The observer's view of stream ``index``: the HLS folder on disk (the reference has no upload)."""
        return FileSource(self.nginx, f"s{index}")

    async def discover(self, deadline: float, rng: object) -> None:
        """Nothing to discover: playlist paths are known in advance."""

    async def stored(self) -> list[dict[str, int]]:
        """Per stream: fragments produced (last sequence in the final playlist + 1; numbering starts at 0)."""
        from bench._ingest_hls import parse_playlist

        counts = []
        for index in range(self.streams):
            path = self.nginx.playlist_path(f"s{index}")
            entries = parse_playlist(path.read_text()) if path.exists() else []
            counts.append({"segments": entries[-1].sequence + 1 if entries else 0, "sessions": int(bool(entries))})
        return counts

    async def diagnostics(self) -> dict[str, Any]:
        """nginx-rtmp keeps no queue worth reading here (it writes to disk)."""
        return {}

    async def stop(self) -> str | None:
        """Stop nginx; an error message when it had to be killed or failed."""
        started = time.monotonic()
        code = await asyncio.to_thread(self.nginx.stop)
        self.stop_seconds = time.monotonic() - started
        return None if code in (0, None) else f"nginx exited with {code}: {self.nginx.log_tail(5)}"

    def log_tail(self, lines: int = 15) -> str:
        return self.nginx.log_tail(lines)

    def findings(self) -> dict[str, Any]:
        """What nginx logged at warn level and above (first 40 lines)."""
        path = self.nginx.prefix / "error.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        flagged = [line for line in text if re.search(r"\[(warn|error|crit|alert|emerg)\]", line)]
        return {
            "error.log": {"lines": len(text), "flagged": len(flagged), "first_flagged": [x[:300] for x in flagged[:40]]}
        }


def main() -> int:
    """Run nginx-rtmp in the foreground with the bench's configuration until Ctrl-C."""
    reason = missing()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as name:
        nginx = NginxRtmp(Path(name))
        nginx.start()
        print(f"nginx-rtmp listening: {nginx.url('<key>')}; HLS in {nginx.hls_dir}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(asyncio.Event().wait())
        nginx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
