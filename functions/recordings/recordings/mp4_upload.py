"""Streaming the recording's MP4 into S3: header, then the live segments' sample bytes, as one multipart upload.

Why this shape: a 4-hour 6 Mb/s broadcast is ~11 GB, more than Lambda's /tmp (10 GB) and memory (10 GB). The
``moov`` is computed first from the fragments' ``trun`` tables (:class:`mediakit.progressive.ProgressiveMp4`),
so the file can be written front to back — ``ftyp``, ``moov``, ``mdat`` header, then every sample payload in order
— without ever holding or re-reading it. Memory stays bounded: ``prefetch`` segments being read ahead plus
``parts_in_flight`` parts being uploaded.

Rules:
- Parts are ``part_size`` bytes (S3: 5 MiB-5 GiB, at most 10,000 parts; only the last may be smaller); the part
  size grows if 10,000 parts would not hold the file.
- Each segment is fetched with one ranged GET spanning the ranges the plan copies from it, in plan order, with a
  bounded read-ahead; the bytes copied are exactly the plan's (their count is checked against ``plan.size``).
- On any failure the multipart upload is aborted (no orphaned parts; the bucket's lifecycle rule is the backstop).
  Running out of the invocation's time is one: each read and part upload starts only with time for it
  (:func:`.budget.check`).
- Content-Type ``video/mp4``; Cache-Control ``public, max-age=86400`` (a rebuild may replace it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import groupby
from typing import Any

from mediakit.progressive import ProgressiveMp4

from . import budget

MIB = 1024 * 1024
MAX_PARTS = 10_000
CACHE_CONTROL = "public, max-age=86400"
#: Multipart parts uploading at once.
PARTS_IN_FLIGHT = 4


def upload_mp4(
    s3: Any,
    bucket: str,
    key: str,
    plan: ProgressiveMp4,
    segment_key: Callable[[int], str],
    *,
    part_size: int = 16 * MIB,
    prefetch: int = 8,
    parts_in_flight: int = PARTS_IN_FLIGHT,
    time_left: budget.TimeLeft = budget.unlimited,
) -> int:
    """Write ``plan`` to ``key`` and return the bytes written.

    Args:
        s3: a boto3 S3 client (thread-safe).
        segment_key: the object key of the segment with a given sequence number.
        part_size: multipart part size in bytes (≥ 5 MiB).
        prefetch: segments read ahead of the writer.
        parts_in_flight: parts uploading at once.
        time_left: the invocation's seconds left (:mod:`.budget`).

    Raises:
        RuntimeError: the bytes copied do not add up to the plan's size (a segment changed under us).
        budget.OutOfTime: the invocation's time ran short (the upload was aborted).
    """
    part_size = max(part_size, 5 * MIB, -(-plan.size // MAX_PARTS))
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="video/mp4", CacheControl=CACHE_CONTROL)[
        "UploadId"
    ]
    try:
        with ThreadPoolExecutor(max_workers=prefetch + parts_in_flight) as pool:
            writer = _PartWriter(s3, bucket, key, upload_id, part_size, pool, parts_in_flight, time_left)
            writer.write(plan.header)
            for chunk in _payloads(s3, bucket, plan, segment_key, pool, prefetch, time_left):
                writer.write(chunk)
            parts = writer.finish()
        if writer.written != plan.size:
            raise RuntimeError(f"wrote {writer.written} bytes of a {plan.size}-byte plan")
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return plan.size


def _payloads(
    s3: Any,
    bucket: str,
    plan: ProgressiveMp4,
    segment_key: Callable[[int], str],
    pool: ThreadPoolExecutor,
    prefetch: int,
    time_left: budget.TimeLeft,
) -> Iterator[memoryview]:
    """The plan's byte ranges, in order, each segment fetched once (one ranged GET over its ranges)."""
    per_segment = ((sequence, [(start, end) for _, start, end in ranges]) for sequence, ranges in
                   groupby(plan.copy_ranges(), key=lambda item: item[0]))  # fmt: skip
    pending: deque[tuple[list[tuple[int, int]], Future[bytes]]] = deque()

    def fetch(sequence: int, first: int, last: int) -> bytes:
        budget.check(time_left, f"reading segment {sequence}")
        response = s3.get_object(Bucket=bucket, Key=segment_key(sequence), Range=f"bytes={first}-{last - 1}")
        data = response["Body"].read()
        if len(data) != last - first:
            raise RuntimeError(f"segment {sequence}: read {len(data)} bytes of {last - first}")
        return data

    def drain_one() -> Iterator[memoryview]:
        ranges, future = pending.popleft()
        data, base = memoryview(future.result()), ranges[0][0]
        for start, end in ranges:
            yield data[start - base : end - base]

    for sequence, ranges in per_segment:
        pending.append((ranges, pool.submit(fetch, sequence, ranges[0][0], ranges[-1][1])))
        if len(pending) > prefetch:
            yield from drain_one()
    while pending:
        yield from drain_one()


class _PartWriter:
    """Buffers bytes into parts of ``part_size`` and uploads them with at most ``in_flight`` at once."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        upload_id: str,
        part_size: int,
        pool: ThreadPoolExecutor,
        in_flight: int,
        time_left: budget.TimeLeft = budget.unlimited,
    ) -> None:
        self._s3, self._bucket, self._key, self._upload_id = s3, bucket, key, upload_id
        self._size, self._pool, self._in_flight = part_size, pool, in_flight
        self._time_left = time_left
        self._buffer = bytearray()
        self._uploads: deque[Future[dict[str, Any]]] = deque()
        self._done: list[dict[str, Any]] = []
        self.written = 0

    def write(self, data: bytes | memoryview) -> None:
        self.written += len(data)
        self._buffer += data
        while len(self._buffer) >= self._size:
            part, self._buffer = bytes(self._buffer[: self._size]), self._buffer[self._size :]
            self._send(part)

    def finish(self) -> list[dict[str, Any]]:
        if self._buffer or not (self._done or self._uploads):
            self._send(bytes(self._buffer))
            self._buffer = bytearray()
        while self._uploads:
            self._done.append(self._uploads.popleft().result())
        return self._done

    def _send(self, part: bytes) -> None:
        while len(self._uploads) >= self._in_flight:
            self._done.append(self._uploads.popleft().result())
        number = len(self._done) + len(self._uploads) + 1
        self._uploads.append(self._pool.submit(self._upload, number, part))

    def _upload(self, number: int, part: bytes) -> dict[str, Any]:
        budget.check(self._time_left, f"uploading part {number}")
        response = self._s3.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=part
        )
        return {"PartNumber": number, "ETag": response["ETag"]}
