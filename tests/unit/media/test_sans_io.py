"""STYLE rule 1 for media: ``mediakit`` is pure: no networking, event loop, AWS, subprocess, files or clocks, and it
imports nothing of CaptureStream's own (the ingest node and the functions both stand on it, never the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

import mediakit

FORBIDDEN = {
    "asyncio",
    "socket",
    "aiobotocore",
    "aiohttp",
    "boto3",
    "botocore",
    "ffmpeg",
    "subprocess",
    "threading",
    "os",
    "shutil",
    "tempfile",
    "time",
    "capturestream",
    "ingest_node",
    "functions",
    "devstack",
}
#: ffmpeg-python only builds argv (``.compile()``); running it is the caller's business.
ALLOWED = {"ffmpeg_args.py": {"ffmpeg"}}
PACKAGE = Path(mediakit.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a source file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_media_package_is_pure() -> None:
    """No module of mediakit imports I/O, clocks, concurrency or CaptureStream's own packages."""
    offenders = {
        str(path.relative_to(PACKAGE)): imported_modules(path) & FORBIDDEN - ALLOWED.get(path.name, set())
        for path in modules()
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}
    assert len(offenders) >= 18


def test_no_open_calls() -> None:
    """Nothing reads or writes files (the caller owns storage)."""
    for path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "open"]
        assert calls == [], path.name


def test_one_box_reader_and_one_playlist_parser() -> None:
    """Box reading and playlist parsing live only in mediakit (no second copy in the node, tests or bench)."""
    root = PACKAGE.parents[1]
    signatures = ('unpack_from(">I4s"', 'startswith("#EXTINF', "EXTINF:([0-9")  # box header, m3u8 line readers
    readers = []
    for folder in ("ingest_node", "functions", "devstack", "bench", "tests", "core", "media"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if path.name != Path(__file__).name and any(signature in text for signature in signatures):
                readers.append(str(path.relative_to(root)))
    assert sorted(readers) == ["media/mediakit/bmff.py"]
