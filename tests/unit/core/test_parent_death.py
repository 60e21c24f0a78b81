"""A child asks to end with its parent only when ``capturestream up`` named it, and then really ends with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from capturestream.parent_death import PARENT_PID_ENV, end_with_parent
from tests.support.system import still_alive


def test_nothing_is_asked_without_a_named_parent() -> None:
    assert end_with_parent({}) is False


def test_a_child_ends_when_its_parent_is_killed() -> None:
    """A parent (the stand-in for ``up``) starts a child that calls end_with_parent, then is SIGKILLed."""
    parent_code = textwrap.dedent(
        """
        import os, subprocess, sys, time
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; from capturestream.parent_death import end_with_parent as e; "
             "assert e(); print('ready', flush=True); time.sleep(60)"],
            env={**os.environ, "CAPTURESTREAM_PARENT_PID": str(os.getpid())},
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        assert child.stdout.readline() == "ready\\n"
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop(PARENT_PID_ENV, None)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert not still_alive([child], within=10)
    finally:
        if parent.poll() is None:
            parent.kill()
