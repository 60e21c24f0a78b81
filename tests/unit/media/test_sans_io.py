"""STYLE rule 1 for the muxer: ``ingest_node/media`` is sans-IO: no networking, event loop, AWS, subprocess, files."""

from __future__ import annotations

import ast
from pathlib import Path

import ingest_node.media

FORBIDDEN = {"asyncio", "socket", "aiobotocore", "boto3", "botocore", "ffmpeg", "subprocess", "threading", "os", "time"}
PACKAGE = Path(ingest_node.media.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a source file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_media_package_is_sans_io() -> None:
    """No module of ingest_node.media imports I/O, clocks or concurrency."""
    offenders = {path.name: imported_modules(path) & FORBIDDEN for path in PACKAGE.glob("*.py")}
    assert {name: bad for name, bad in offenders.items() if bad} == {}
    assert len(offenders) >= 10


def test_no_open_calls() -> None:
    """Nothing reads or writes files (the caller owns storage)."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "open"]
        assert calls == [], path.name
