"""The REST API's FastAPI application: :func:`create_app` wires routers, error handlers and CORS.

Rules:
- ``create_app()`` reads no settings and creates no clients, so ``handler.py`` can build the app at import
  time (Lambda init) while tests still configure the environment first. CORS origins are therefore read on the
  first request by :class:`SettingsCORSMiddleware` (and re-read after ``get_settings.cache_clear()``).
- Paths: the API under ``/api``; OpenAPI at ``/openapi.json`` and Swagger UI at ``/docs``, the two extra
  routes the HTTP API forwards (template.yaml ``ApiFunction`` events).
- Operation ids are ``<tag>-<function name>`` (``channels-create_channel``): unique and stable for generated
  clients (full-stack-fastapi-template ``custom_generate_unique_id``).
- CORS is an allowlist (``CORS_ALLOW_ORIGINS``) and never allows credentials: the API authenticates with a
  bearer header, not cookies, so even a ``*`` entry cannot expose a session. In AWS the HTTP API's
  ``CorsConfiguration`` answers preflights and overrides these headers; the middleware keeps local runs and
  direct invocations consistent with it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from capturestream import __version__
from capturestream.settings import ApiSettings

from .deps import get_api_settings
from .errors import install_error_handlers
from .routes import api_router

#: Methods and headers a browser may use cross-origin (mirrors template.yaml ``HttpApi.CorsConfiguration``).
CORS_ALLOW_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_ALLOW_HEADERS = ["authorization", "content-type"]
CORS_MAX_AGE = 600

_DESCRIPTION = """\
REST API of CaptureStream. JSON bodies use camelCase. Owner endpoints need `Authorization: Bearer <JWT>`
(HS256, signed with `JWT_SECRET`). Every error is `{"error": {"code": "...", "message": "..."}}`; invalid input
is 422 with `error.fields` naming each bad field.
"""


def _operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


class SettingsCORSMiddleware:
    """Starlette's ``CORSMiddleware`` with its allowlist taken from :class:`ApiSettings` at request time.

    Rebuilt whenever the cached settings object changes, so nothing is read at import and tests that clear
    the settings cache see their own ``CORS_ALLOW_ORIGINS``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._settings: ApiSettings | None = None
        self._cors: ASGIApp = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_api_settings()
        if settings is not self._settings:
            self._cors = CORSMiddleware(
                self.app,
                allow_origins=settings.cors_allow_origins,
                allow_methods=CORS_ALLOW_METHODS,
                allow_headers=CORS_ALLOW_HEADERS,
                allow_credentials=False,
                max_age=CORS_MAX_AGE,
            )
            self._settings = settings
        await self._cors(scope, receive, send)


def create_app() -> FastAPI:
    """Build the REST API application (cheap; reads no settings)."""
    app = FastAPI(
        title="CaptureStream",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        generate_unique_id_function=_operation_id,
    )
    install_error_handlers(app)
    app.add_middleware(SettingsCORSMiddleware)
    app.include_router(api_router)
    return app
