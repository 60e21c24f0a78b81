"""``/proc`` sampling for :mod:`bench.ingest`: CPU time and resident memory of a process tree (no psutil).

Rules:
- A process is identified by ``(pid, starttime)``, so a reused pid is never mistaken for the process it replaced.
- CPU = ``utime + stime`` from ``/proc/<pid>/stat`` (clock ticks, ``CLK_TCK`` per second). The CPU of a window is,
  for every process seen in the tree during the window, its last sampled value minus its value at the start of the
  window (0 when it was born inside the window). A process that exits inside the window is counted up to its last
  sample (the subjects here keep their processes for the whole window).
- Memory = VmRSS (``/proc/<pid>/statm`` resident pages); the tree figure is the sum over the tree at one sample,
  the peak is the largest such sum. VmRSS counts shared libraries once per process.
- Each process gets a *role* from its command line (given by the subject: ``node``, ``moto``, ``up``, ``nginx``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.up import descendants

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

ProcessKey = tuple[int, int]  # (pid, starttime)


def read_stat(pid: int) -> tuple[int, float, float] | None:
    """``(starttime, utime, stime)`` of ``pid`` (times in seconds), or None when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19]), int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def read_rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def cmdline(pid: int) -> str:
    """The command line of ``pid`` with spaces between arguments ('' when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class TreeSampler:
    """Samples the tree below ``root`` (root included); :meth:`begin`/:meth:`end` delimit the measured window.

    ``classify(pid, cmdline)`` names each process's role; roles are fixed at first sight of a process.
    """

    root: int
    classify: Callable[[int, str], str]
    interval: float = 0.5
    roles: dict[ProcessKey, str] = field(default_factory=dict)
    baseline: dict[ProcessKey, tuple[float, float]] = field(default_factory=dict)
    last: dict[ProcessKey, tuple[float, float]] = field(default_factory=dict)
    kernel: dict[str, float] = field(default_factory=dict)  # of the CPU seconds :meth:`end` returns: stime
    peak_rss: int = 0
    peak_rss_by_role: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    measuring: bool = False
    _task: asyncio.Task[None] | None = None

    def sample(self) -> dict[ProcessKey, tuple[tuple[float, float], int]]:
        """One sample of every process in the tree: ``{(pid, start): ((utime, stime), rss bytes)}``."""
        pids = [self.root, *descendants(self.root)]
        seen: dict[ProcessKey, tuple[tuple[float, float], int]] = {}
        for pid in pids:
            stat = read_stat(pid)
            if stat is None:
                continue
            key = (pid, stat[0])
            if key not in self.roles:
                self.roles[key] = self.classify(pid, cmdline(pid))
            seen[key] = ((stat[1], stat[2]), read_rss(pid))
        if self.measuring:
            self.samples += 1
            total = 0
            by_role: dict[str, int] = {}
            for key, (cpu, rss) in seen.items():
                self.last[key] = cpu
                total += rss
                by_role[self.roles[key]] = by_role.get(self.roles[key], 0) + rss
            self.peak_rss = max(self.peak_rss, total)
            for role, rss in by_role.items():
                self.peak_rss_by_role[role] = max(self.peak_rss_by_role.get(role, 0), rss)
        return seen

    def begin(self) -> None:
        """Start the window: CPU baseline now, RSS peaks from now on."""
        self.measuring = True
        self.baseline = {key: cpu for key, (cpu, _) in self.sample().items()}
        self.last = dict(self.baseline)

    def end(self) -> dict[str, float]:
        """Close the window; CPU seconds (user + system) spent in it per role (system alone in :attr:`kernel`)."""
        self.sample()
        self.measuring = False
        spent: dict[str, float] = {}
        self.kernel = {}
        for key, (user, system) in self.last.items():
            role = self.roles[key]
            user0, system0 = self.baseline.get(key, (0.0, 0.0))
            spent[role] = spent.get(role, 0.0) + user + system - user0 - system0
            self.kernel[role] = self.kernel.get(role, 0.0) + system - system0
        return spent

    def cpu_now(self) -> float:
        """CPU seconds the tree has used so far (for short idle readings outside a window)."""
        return sum(user + system for (user, system), _ in self.sample().values())

    def start(self) -> None:
        """Sample every ``interval`` in the background (RSS peaks; CPU of processes that may exit)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval)
                self.sample()

        self._task = asyncio.create_task(loop(), name="tree-sampler")

    async def stop(self) -> None:
        """Stop the background sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
