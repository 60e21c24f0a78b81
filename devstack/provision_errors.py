"""How AWS failures surface while provisioning: :class:`ProvisionError`, naming the template resource.

This module owns the error type shared by :mod:`devstack.provision` and :mod:`devstack.provision_table`, and
the helpers both use around botocore calls: :func:`naming` (AWS error -> :class:`ProvisionError`) and
:func:`error_code`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["ProvisionError", "error_code", "naming"]


class ProvisionError(RuntimeError):
    """A resource could not be created or reconciled; the message names it."""


@contextmanager
def naming(logical_id: str) -> Iterator[None]:
    """Re-raise AWS errors as :class:`ProvisionError` that names the template resource."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise ProvisionError(f"{logical_id}: {exc}") from exc


def error_code(exc: ClientError) -> str:
    """The AWS error code of ``exc`` (e.g. ``ResourceNotFoundException``), or ``""``."""
    return str(exc.response.get("Error", {}).get("Code", ""))
