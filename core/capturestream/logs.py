"""Log set-up for CaptureStream's *applications* (``capturestream up``, the ingest node, Lambda handlers).

Libraries never configure logging; the entry points call :func:`configure_logging` once. JSON output puts every
``extra=`` field (stream ids, connection names, keys of objects — never stream keys) into the record, which is what
CloudWatch Logs Insights and ``jq`` want.
"""

from __future__ import annotations

import json
import logging
import sys

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: Loggers whose DEBUG/INFO output is noise or, for botocore, may contain request bodies (stream-key hashes).
QUIET = ("botocore", "aiobotocore", "urllib3", "aiohttp.access", "werkzeug", "asyncio")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, every extra field, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the extra fields appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        line = super().format(record)
        return f"{line}  [{extras}]" if extras else line


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send the root logger to stderr as ``text`` or ``json``; keep :data:`QUIET` loggers at WARNING or above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
