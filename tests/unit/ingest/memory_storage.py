"""An in-memory S3 behind the real :class:`~ingest_node.storage.uploader.Uploader`, for broadcast unit tests.

The broadcast's upload queues, ordering and memory budgets are the real ones (no spool); only the PUT is replaced:
every stored version is kept in upload order (``puts``) and the newest version of each key in ``objects``.
"""

from __future__ import annotations

from ingest_node.storage.s3_put import S3PutError, Upload
from ingest_node.storage.uploader import Outcome, Uploader


class MemoryUploader(Uploader):
    """The real uploader over an S3 that always accepts."""

    def __init__(self) -> None:
        super().__init__("test-bucket")
        self.puts: list[tuple[str, bytes]] = []
        self.objects: dict[str, bytes] = {}

    async def store(self, upload: Upload, *, attempts: int | None = None) -> tuple[Outcome, S3PutError | None]:
        self.puts.append((upload.key, upload.body))
        self.objects[upload.key] = upload.body
        self._stored(upload)
        return Outcome.STORED, None
