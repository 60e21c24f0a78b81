"""``/proc`` sampling for :mod:`bench.ingest`: CPU time and resident memory of a process tree (no psutil).

Rules:
- A process is identified by ``(pid, starttime)``, so a reused pid is never mistaken for the process it replaced.
- CPU = ``utime + stime`` from ``/proc/<pid>/stat`` (clock ticks, ``CLK_TCK`` per second). The CPU of a window is,
  for every process alive in the tree at its end, its last sampled value minus its value at the start of the
  window (0 when it was born inside the window).
- Processes that exit inside the window (``up``'s thumbnail ffmpegs live ~0.1 s, far below the sampling interval,
  so most are never sampled at all) are counted whole, through their parent: ``cutime + cstime`` of a process grow
  by the CPU of every child it has waited for. A window gets each surviving process's growth of those, less what
  its exited children had used before the window; it goes to the role of the exited children seen (``other`` when
  none was seen, or they differ).
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


def read_family_stat(pid: int) -> tuple[int, int, float, float, float, float] | None:
    """``(starttime, ppid, utime, stime, cutime, cstime)`` of ``pid`` (times in seconds; ``cutime``/``cstime``:
    its children that it has waited for), or None when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    user, system, child_user, child_system = (int(value) / CLK_TCK for value in fields[11:15])
    return int(fields[19]), int(fields[1]), user, system, child_user, child_system


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
    #: ``(cutime, cstime)`` per process: at the window's start, and at the last sample.
    children_baseline: dict[ProcessKey, tuple[float, float]] = field(default_factory=dict)
    children_last: dict[ProcessKey, tuple[float, float]] = field(default_factory=dict)
    parents: dict[ProcessKey, int] = field(default_factory=dict)
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
            stat = read_family_stat(pid)
            if stat is None:
                continue
            start, ppid, user, system, child_user, child_system = stat
            key = (pid, start)
            if key not in self.roles:
                self.roles[key] = self.classify(pid, cmdline(pid))
            self.parents[key] = ppid
            self.children_last[key] = (child_user, child_system)
            seen[key] = ((user, system), read_rss(pid))
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
        self.children_baseline = {key: self.children_last[key] for key in self.baseline}

    def end(self) -> dict[str, float]:
        """Close the window; CPU seconds (user + system) spent in it per role (system alone in :attr:`kernel`)."""
        alive = self.sample()
        self.measuring = False
        spent: dict[str, float] = {}
        self.kernel = {}

        def add(role: str, user: float, system: float) -> None:
            spent[role] = spent.get(role, 0.0) + user + system
            self.kernel[role] = self.kernel.get(role, 0.0) + system

        exited: dict[int, list[ProcessKey]] = {}  # parent pid -> its children that exited in the window
        for key, (user, system) in self.last.items():
            user0, system0 = self.baseline.get(key, (0.0, 0.0))
            if key in alive:
                add(self.roles[key], user - user0, system - system0)
            else:
                exited.setdefault(self.parents[key], []).append(key)
        for key in alive:
            child_user, child_system = self.children_last[key]
            child_user0, child_system0 = self.children_baseline.get(key, (0.0, 0.0))
            children = exited.get(key[0], [])
            before_user = sum(self.baseline.get(child, (0.0, 0.0))[0] for child in children)
            before_system = sum(self.baseline.get(child, (0.0, 0.0))[1] for child in children)
            roles = {self.roles[child] for child in children}
            role = roles.pop() if len(roles) == 1 else "other"
            user, system = child_user - child_user0 - before_user, child_system - child_system0 - before_system
            if user + system > 0:
                add(role, user, system)
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
