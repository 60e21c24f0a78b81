"""The WebSocket ``error`` codes are the contract's: capturestream.messages.ERROR_CODES lists every one sent."""

from __future__ import annotations

import re
from pathlib import Path

from capturestream import errors, messages

WS = Path(__file__).resolve().parents[3] / "functions" / "ws"


def test_every_domain_error_the_websocket_function_raises_has_a_contract_code() -> None:
    raised = {name for path in WS.glob("*.py") for name in re.findall(r"raise (\w+)\(", path.read_text())}
    codes = {getattr(errors, name).code for name in raised if hasattr(errors, name)}
    assert codes == {"not_found", "conflict", "rate_limited"}
    parsing = {errors.InvalidMessage.code, errors.MessageTooLarge.code}  # from messages.parse_client_message
    assert codes | parsing <= set(messages.ERROR_CODES)
