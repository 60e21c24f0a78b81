"""``GET /api/status``: public liveness and readiness of the REST function.

Rules:
- Public and cheap: one ``DescribeTable`` call (free, included in SAM's ``DynamoDBCrudPolicy``), no item
  reads, nothing about callers or streams.
- ``200`` with ``status: ok`` when every check passes, otherwise ``503`` with ``status: error`` and the failing
  check marked ``error``; the cause goes to the log, never into the response.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from capturestream import __version__
from capturestream.models import utc_now

from ..deps import DynamoDep, SettingsDep
from ..schemas import StatusChecks, StatusResponse

logger = logging.getLogger(__name__)

router = APIRouter(tags=["status"])


@router.get(
    "/status",
    response_model=StatusResponse,
    responses={503: {"model": StatusResponse, "description": "A dependency check failed."}},
)
def get_status(settings: SettingsDep, dynamodb: DynamoDep, response: Response) -> StatusResponse:
    """Report the API version, server time and whether the table is reachable."""
    from botocore.exceptions import BotoCoreError, ClientError  # already loaded by get_dynamodb (boto3)

    try:
        dynamodb.describe_table(TableName=settings.table_name)
        table_check = "ok"
    except (BotoCoreError, ClientError) as exc:
        logger.warning("status check: table %s unreachable: %s", settings.table_name, type(exc).__name__)
        table_check = "error"
    healthy = table_check == "ok"
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return StatusResponse(
        status="ok" if healthy else "error",
        version=__version__,
        time=utc_now(),
        checks=StatusChecks(table=table_check),
    )
