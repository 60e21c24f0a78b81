"""A child of ``capturestream up`` ends when ``up`` does, however ``up`` ends.

``up`` starts its children (moto, the ingest node) in their own sessions, so that a stop reaches whatever they
spawned, and stops them itself on SIGINT/SIGTERM/SIGHUP. When ``up`` dies without stopping them (SIGKILL, the OOM
killer, a crash), they ran on as orphans holding its ports, and the next ``up`` could not start.

Rules:
- ``up`` names itself in the child's environment (:data:`PARENT_PID_ENV`); a child that finds it there calls
  :func:`end_with_parent` first thing, which asks Linux for SIGTERM when the parent dies
  (``prctl(PR_SET_PDEATHSIG)``), so the child shuts down as gracefully as if ``up`` had stopped it.
- If the parent is already gone by then (it died between the fork and the request), the child sends itself SIGTERM.
- Without the variable (production: the ingest node under systemd or ECS) or off Linux, nothing happens.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

#: Environment variable holding the pid of the parent a child must not outlive.
PARENT_PID_ENV = "CAPTURESTREAM_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def end_with_parent(environ: Mapping[str, str] = os.environ) -> bool:
    """Get SIGTERM when the parent named in ``environ`` dies; True when the kernel was asked to."""
    expected = environ.get(PARENT_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        log.warning("cannot ask to end with the parent process: %s", os.strerror(ctypes.get_errno()))
        return False
    if os.getppid() != int(expected):  # the parent died before the request: no signal would ever come
        os.kill(os.getpid(), signal.SIGTERM)
    return True
