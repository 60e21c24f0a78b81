"""A running ``capturestream up`` for end-to-end tests: start it as a user would, talk to it, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CLI = [sys.executable, "-m", "devstack.cli"]
#: Generous: ``up`` is ready in ~5-10 s, but a CI box running browsers and encoders beside it can triple that.
READY_TIMEOUT = 60.0


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc; no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def still_alive(pids: set[int] | list[int], within: float) -> list[int]:
    """Wait up to ``within`` seconds for every process of ``pids`` to end; those still running then."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [pid for pid in pids if alive(pid)]


class System:
    """A running ``capturestream up`` subprocess and its endpoints."""

    def __init__(self, state_dir: Path, *extra: str) -> None:
        self.state_dir = state_dir
        self.log = (state_dir.parent / "up.log").open("w")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [*CLI, "up", "--ports", "auto", "--state-dir", str(state_dir), *extra],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stack_file = state_dir / "stack.json"
        while not stack_file.exists():
            if self.process.poll() is not None or time.monotonic() - started > READY_TIMEOUT:
                self.stop()  # never leave a half-started stack (moto, ingest node) running behind a failed test
                raise RuntimeError(f"up did not become ready:\n{(state_dir.parent / 'up.log').read_text()}")
            time.sleep(0.05)
        self.ready_seconds = time.monotonic() - started
        self.stack = json.loads(stack_file.read_text())
        self.token = (state_dir / "dev-token").read_text().strip()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args, "--state-dir", str(self.state_dir)], capture_output=True, text=True, timeout=30
        )

    def request(self, method: str, path: str, body: object = None, token: str | None = "dev") -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.token if token == 'dev' else token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.stack["api_url"] + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM the system and wait for it (kill it if it hangs); return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()
