"""The REST API function: FastAPI behind Mangum (``handler.handler``), routes under ``/api``.

Imported as ``api`` in Lambda (``CodeUri: functions/``) and as ``functions.api`` locally, so modules in this
package import each other relatively and everything shared from ``capturestream``.
"""
