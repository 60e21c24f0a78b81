"""A handler module whose import fails (a dependency missing from the deployment package)."""

import capturestream_module_that_does_not_exist  # noqa: F401


def handler(event: object, context: object) -> None:
    """Never reached."""
