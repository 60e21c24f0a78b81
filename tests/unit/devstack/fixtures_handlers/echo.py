"""Returns the event and every context field, and mutates its event copy."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Echo the event and the context the runtime passed in."""
    received = dict(event)
    event["mutated_by_handler"] = True
    return {
        "event": received,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
