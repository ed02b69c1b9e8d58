"""The API's writes: the command line's operations (``planner.interfaces.operations``), over HTTP.

``trigger``, ``hold``, ``release``, ``reset``, ``PATCH`` (``planner set``) on a process,
``cancel`` and ``retry`` on a run: the same functions as ``planner trigger`` and the others, so
they write the same requests and refuse the same things. Each needs the bearer token first
(``errors.check_token``); then an unknown process or run is 404, a conflict 409, a bad body 400.
A moot request (hold of a held process, cancel of an ended run) is 200 with ``done: false``.

``trigger`` with ``at`` asks for a run from that time on (``planner trigger --at``); ``retry`` is
``planner retry`` (409 for a run that succeeded or has not ended).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header

from planner.interfaces import operations
from planner.interfaces.api.context import ApiContext
from planner.interfaces.api.errors import ApiError, check_token, error_responses
from planner.interfaces.api.models import OperationDoc, ProcessSummary, TriggerBody
from planner.interfaces.api.reads import zone_of
from registry.errors import RunNotFound
from registry.storage.codec import process_to_document

__all__ = ["write_routes"]

_GUARDED = (401, 403)


def _doc(outcome: operations.Outcome) -> dict[str, Any]:
    return {
        "done": outcome.done,
        "message": outcome.message,
        "request": outcome.request,
        "waits": outcome.waits,
        "note": outcome.note,
    }


def write_routes(ctx: ApiContext) -> APIRouter:
    def authorised(
        authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
    ) -> None:
        check_token(ctx.token, authorization)

    router = APIRouter(tags=["writes"], dependencies=[Depends(authorised)])

    @router.post(
        "/processes/{name}/trigger",
        response_model=OperationDoc,
        responses=error_responses(400, *_GUARDED, 404),
    )
    def trigger(name: str, body: Annotated[TriggerBody | None, Body()] = None) -> dict[str, Any]:
        """Request an extra run now (bypassing due, failed, refresh window and not_before;
        ``force``: ancestors too). It is durable until a run of the process carries it."""
        body = body or TriggerBody()
        at = None
        if body.at is not None:  # the pattern admits only times that parse; to be sure:
            try:
                at = datetime.fromisoformat(body.at)
            except ValueError:
                raise ApiError(400, f"at: {body.at!r} is not a date or time") from None
            if at.tzinfo is None:
                registry, _ = ctx.store.load_registry()
                at = at.replace(tzinfo=zone_of(registry))
        outcome = operations.trigger(
            ctx.store, name, params=body.params, force=body.force, now=ctx.clock(), at=at
        )
        return _doc(outcome)

    @router.post(
        "/processes/{name}/hold",
        response_model=OperationDoc,
        responses=error_responses(400, *_GUARDED, 404),
    )
    def hold(name: str) -> dict[str, Any]:
        """Never start the process until released (runs in flight continue)."""
        return _doc(operations.hold(ctx.store, name))

    @router.post(
        "/processes/{name}/release",
        response_model=OperationDoc,
        responses=error_responses(400, *_GUARDED, 404),
    )
    def release(name: str) -> dict[str, Any]:
        """Let a held process start again."""
        return _doc(operations.release(ctx.store, name))

    @router.post(
        "/processes/{name}/reset",
        response_model=OperationDoc,
        responses=error_responses(*_GUARDED, 404, 409),
    )
    def reset(name: str) -> dict[str, Any]:
        """Forget its successes and failures so it may run again; 409 while a run is in flight."""
        return _doc(operations.reset(ctx.store, name, now=ctx.clock()))

    @router.patch(
        "/processes/{name}",
        response_model=ProcessSummary,
        responses=error_responses(400, *_GUARDED, 404),
    )
    def change(
        name: str,
        changes: Annotated[
            dict[str, Any],
            Body(
                description='fields and their new values, e.g. {"priority": 200}; null restores'
                " the built-in default. Validated like the YAML file.",
                examples=[{"priority": 200}],
                min_length=1,
            ),
        ],
    ) -> dict[str, Any]:
        """Change fields of the process, as ``planner set`` does; answers its new settings."""
        definition = operations.set_fields(ctx.store, name, changes, as_text=False)
        return {
            "process": name,
            "valid": True,
            "problem": None,
            "definition": process_to_document(definition),
        }

    @router.post(
        "/runs/{run_id}/cancel",
        response_model=OperationDoc,
        responses=error_responses(*_GUARDED, 404),
    )
    def cancel(run_id: str) -> dict[str, Any]:
        """Cancel a run queued, running or waiting to retry (moot once it ended)."""
        if "\x00" in run_id:
            raise RunNotFound(run_id)
        return _doc(operations.cancel(ctx.store, run_id, now=ctx.clock()))

    @router.post(
        "/runs/{run_id}/retry",
        response_model=OperationDoc,
        responses=error_responses(*_GUARDED, 404, 409),
    )
    def retry(run_id: str) -> dict[str, Any]:
        """Run a finished failed, timed-out or cancelled run again, as ``planner retry``: a new
        run with its params and scheduled time; 409 for a run that succeeded or has not ended."""
        if "\x00" in run_id:
            raise RunNotFound(run_id)
        return _doc(operations.retry(ctx.store, run_id, now=ctx.clock()))

    return router
