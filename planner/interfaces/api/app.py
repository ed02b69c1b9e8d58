"""The FastAPI application: ``/api/v1`` (reads, writes, the OpenAPI document) and ``/metrics``.

``create_app(store, token=…, metrics=…)`` builds it around a store of its own. The routes are
plain (synchronous) functions: FastAPI runs them on its worker threads, so a slow database
query never holds up the server's event loop, and the planner's loop never waits for the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import Response

from planner.interfaces.api.context import ApiContext
from planner.interfaces.api.errors import install_handlers
from planner.interfaces.api.metrics import CONTENT_TYPE, PlannerMetrics
from planner.interfaces.api.reads import read_routes
from planner.interfaces.api.writes import write_routes

if TYPE_CHECKING:
    from registry.storage.store import Store

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"

_DESCRIPTION = """\
The HTTP API of dask-planner: what `planner status`, `explain`, `history`, `show`, `logs` and
`stats` show, and the operations of `planner trigger`, `hold`, `release`, `reset`, `set`,
`cancel` and `retry`.

Writes need `Authorization: Bearer <token>`, the token being the planner's `PLANNER_API_TOKEN`;
without one configured they are refused (403). Errors are `{"error": {"code", "message"}}`.
Times are ISO-8601 with the registry timezone's offset; durations are seconds.
"""


def create_app(
    store: Store, *, token: str | None, metrics: PlannerMetrics | None = None
) -> FastAPI:
    """The API over ``store``; writes need ``token`` (``None`` or empty: writes refused)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("dask-planner")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        release = "0"
    ctx = ApiContext(store=store, token=token or None, metrics=metrics or PlannerMetrics())
    app = FastAPI(
        title="dask-planner",
        version=release,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    install_handlers(app)
    app.include_router(read_routes(ctx), prefix=API_PREFIX)
    app.include_router(write_routes(ctx), prefix=API_PREFIX)
    _without_422(app)

    @app.get("/metrics", include_in_schema=False)
    def metrics_text() -> Response:
        return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE)

    app.state.context = ctx
    return app


def _without_422(app: FastAPI) -> None:
    """FastAPI documents a 422 answer of its own on every route that takes input; this API
    answers validation errors with 400 in its one error shape (``errors``), so the document
    says 400 where the route declares it and never 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        schemas = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
