"""bench._ingest_proc.TreeSampler counts the CPU of children that live and die between two samples (``up``'s
thumbnail ffmpegs), through their parent's ``cutime``/``cstime``, and only the part spent inside the window."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

from bench._ingest_proc import TreeSampler, read_family_stat

# A parent that idles 0.3 s (the window opens meanwhile), then runs six children of ~0.1 s of CPU one after the
# other and waits for each, as `up` runs ffmpeg, then idles until killed.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    time.sleep(0.3)
    burn = "import time\\nend = time.process_time() + 0.1\\nwhile time.process_time() < end: pass"
    for _ in range(6):
        subprocess.run([sys.executable, "-S", "-c", burn], check=True)
    print("done", flush=True)
    time.sleep(60)
    """
)


async def test_short_lived_children_are_counted_whole() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        sampler = TreeSampler(parent.pid, lambda pid, cmd: "parent" if pid == parent.pid else "child", interval=5.0)
        sampler.begin()
        assert parent.stdout is not None
        await asyncio.to_thread(parent.stdout.readline)
        stat = read_family_stat(parent.pid)
        assert stat is not None
        children_cpu = stat[4] + stat[5]  # all they used: the window opened before the first one started
        time.sleep(0.05)
        spent = sampler.end()
    finally:
        parent.kill()
        parent.wait()
    assert sampler.samples == 2  # begin and end: no child was ever sampled
    assert children_cpu >= 0.5
    assert abs(spent["other"] - children_cpu) < 0.02
    assert spent.get("parent", 0.0) < 0.3
