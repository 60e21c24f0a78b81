"""Child processes of ``capturestream up``: start them, learn their ports, stop them without leaving orphans.

Rules:
- Children start in their own process group, so a stop signal reaches whatever they spawned (ffmpeg under the
  ingest node, later); ``stop`` sends SIGTERM to the group, waits, then SIGKILLs it.
- A child never outlives this process: it finds this pid in its environment and asks the kernel for SIGTERM when
  this process dies (:mod:`capturestream.parent_death`), so a SIGKILLed or crashed ``up`` leaves no orphan.
- A child that announces readiness prints one JSON line on stdout (``{"port": N}``); what it writes to stderr goes
  to its log file in the state dir and, for children started with ``echo=True`` (the ingest node: a developer
  wants to see "publish refused" where they ran ``up``), also to this process's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from capturestream.parent_death import PARENT_PID_ENV

log = logging.getLogger(__name__)


class ChildProcess:
    """One supervised child process."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], log_path: Path, echo: bool = False) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.echo = echo
        self.process: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None

    @classmethod
    def python_module(
        cls, name: str, module: str, *args: str, env: dict[str, str], log_path: Path, echo: bool = False
    ) -> ChildProcess:
        """A child running ``python -m module args…`` with this interpreter."""
        return cls(name, [sys.executable, "-m", module, *args], env=env, log_path=log_path, echo=echo)

    async def start(self, *, ready_timeout: float = 20.0) -> dict[str, Any]:
        """Start the child and wait for its readiness line.

        Returns:
            The JSON object the child printed when ready.

        Raises:
            RuntimeError: the child exited or stayed silent for ``ready_timeout`` seconds (its log is named).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                *self.args,
                env={**self.env, PARENT_PID_ENV: str(os.getpid())},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE if self.echo else log_file,
                start_new_session=True,
            )
        if self.echo:
            self._relay = asyncio.create_task(self._relay_stderr(), name=f"{self.name}-stderr")
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), ready_timeout)
            ready = json.loads(line)
        except (TimeoutError, json.JSONDecodeError):
            await self.stop()
            raise RuntimeError(f"{self.name} did not start; see {self.log_path}") from None
        log.debug("%s ready (pid %s): %s", self.name, self.process.pid, ready)
        return ready

    async def _relay_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        with self.log_path.open("ab") as log_file:
            while line := await self.process.stderr.readline():
                log_file.write(line)
                log_file.flush()
                sys.stderr.buffer.write(f"[{self.name}] ".encode() + line)
                sys.stderr.buffer.flush()

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self.process.pid if self.process else None

    async def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds; return its exit code."""
        process = self.process
        if process is None or process.returncode is not None:
            return process.returncode if process else None
        self._signal_group(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            log.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, grace)
            self._signal_group(signal.SIGKILL)
            code = await process.wait()
        if self._relay is not None:
            await asyncio.gather(self._relay, return_exceptions=True)
        return code

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)
