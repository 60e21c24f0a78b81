"""Interpretation of a ``ReportBatchItemFailures`` response, shared by the SQS and stream sources.

Rules (AWS Lambda Developer Guide, "Success and failure conditions", services-sqs-errorhandling and
services-ddb-batchfailurereporting):
    * Complete success: ``None`` (null EventResponse), an object without ``batchItemFailures`` (empty
      EventResponse), or a null/empty ``batchItemFailures`` list.
    * Complete failure: a response that is not a JSON object, a ``batchItemFailures`` that is not a list, an
      entry without the ``itemIdentifier`` key (bad key name), a null or empty ``itemIdentifier``, or an
      ``itemIdentifier`` that is not in the batch (documented for SQS; applied to streams as well here).
    * The response is only looked at when ``ReportBatchItemFailures`` is enabled on the mapping; the caller
      decides that.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


class InvalidBatchResponse(ValueError):
    """The function's batch response makes Lambda treat the whole batch as failed."""


def failed_item_identifiers(response: Any, batch_identifiers: Collection[str]) -> list[str]:
    """Return the ``itemIdentifier`` values the function reported as failed.

    Args:
        response: The function's decoded response.
        batch_identifiers: The identifiers in the batch (SQS message ids or stream sequence numbers).

    Returns:
        The reported identifiers in response order, without duplicates; empty for a complete success.

    Raises:
        InvalidBatchResponse: The response means a complete failure of the batch.
    """
    if response is None:
        return []
    if not isinstance(response, dict):
        raise InvalidBatchResponse(f"response is not a JSON object: {type(response).__name__}")
    failures = response.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        raise InvalidBatchResponse("batchItemFailures is not a list")
    identifiers: list[str] = []
    for entry in failures:
        if not isinstance(entry, dict) or "itemIdentifier" not in entry:
            raise InvalidBatchResponse(f"entry without itemIdentifier: {entry!r}")
        identifier = entry["itemIdentifier"]
        if not isinstance(identifier, str) or not identifier:
            raise InvalidBatchResponse(f"null, empty or non-string itemIdentifier: {identifier!r}")
        if identifier not in batch_identifiers:
            raise InvalidBatchResponse(f"itemIdentifier {identifier!r} is not in the batch")
        if identifier not in identifiers:
            identifiers.append(identifier)
    return identifiers
