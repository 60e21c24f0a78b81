"""The RTMP core stays sans-IO (STYLE.md rule 1): no networking, event loop, AWS or ffmpeg imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ingest_node.rtmp

CORE = Path(ingest_node.rtmp.__file__).parent
FORBIDDEN = {"asyncio", "socket", "aiobotocore", "boto3", "botocore", "ffmpeg", "aiohttp", "selectors", "ssl"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_no_io(path: Path) -> None:
    """Each ``ingest_node/rtmp/*.py`` imports nothing that does I/O."""
    assert not imported_roots(path) & FORBIDDEN


def test_the_check_sees_imports() -> None:
    """The AST walk catches plain, dotted and from-imports (so the test above cannot pass vacuously)."""
    source = "import asyncio\nimport botocore.session\nfrom socket import socket\n"
    tree = ast.parse(source)
    found = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    found |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert found == {"asyncio", "botocore", "socket"}
    assert len(list(CORE.glob("*.py"))) >= 10
