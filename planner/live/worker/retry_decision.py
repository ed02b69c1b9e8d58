"""After a failed attempt with retries left: retry, fail now, or cancel? Decided on the worker.

Two settings of the process decide, in order:

1. ``retry_on``: exception type names worth retrying. An attempt whose exception is not one of
   them — by its class or any base, by bare name (``ConnectionError``) or qualified
   (``requests.exceptions.Timeout``) — fails now. A timed-out attempt counts as ``Timeout`` and
   ``TimeoutError``; a command that exited non-zero as ``CommandFailed``. Empty: any failure.
2. ``on_error``: a hook called with those of ``process``, ``run_id``, ``attempt``, ``status``
   and ``error`` it declares; it returns ``"retry"``, ``"fail"`` or ``"cancel"``. A hook that
   raises, or returns anything else, counts as ``"retry"``, and that is logged.

Both run here, where the exception's class is known; the planner receives the verdict with the
outcome (``JobOutcome.retry``, or a ``cancelled`` status) and its core ends the run accordingly.
``execute`` decides inside the attempt's log capture, so what is logged here (a hook's
traceback) is in the attempt's log, and it notes the reason in the attempt's error message —
also when the attempt is retried anyway because the hook raised.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence

from planner.live.worker.callables import _accepted_kwargs, import_target
from planner.live.worker.outcome import clip, exception_kinds
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

__all__ = ["Verdict", "decide", "exception_kinds"]

log = logging.getLogger(__name__)

#: what a reason quotes of a hook's error or answer is cut to this length
REASON_MAX_CHARS = 500


class Verdict(enum.StrEnum):
    RETRY = "retry"
    FAIL = "fail"
    CANCEL = "cancel"


def _kinds_of(status: RunStatus, error: ErrorInfo | None) -> tuple[str, ...]:
    if status is RunStatus.TIMED_OUT:
        return ("Timeout", "TimeoutError")
    if error is None:
        return ()
    return error.kinds or (error.type,)


def decide(
    *,
    retry_on: Sequence[str],
    on_error: str | None,
    process: str,
    run_id: str,
    attempt: int,
    status: RunStatus,
    error: ErrorInfo | None,
    cwd: str | None = None,
) -> tuple[Verdict, str]:
    """The verdict on a failed (or timed-out) attempt that has retries left, and why."""
    if retry_on:
        kinds = _kinds_of(status, error)
        if not set(kinds) & set(retry_on):
            shown = kinds[0] if kinds else status.value
            return Verdict.FAIL, f"{shown} is not in retry_on ({', '.join(retry_on)})"
    if on_error is None:
        return Verdict.RETRY, ""
    available = {
        "process": process,
        "run_id": run_id,
        "attempt": attempt,
        "status": status,
        "error": error,
    }
    try:
        hook = import_target(on_error, cwd=cwd)
        answer = hook(**_accepted_kwargs(hook, available))
    except (Exception, SystemExit) as exc:
        log.exception("on_error hook %r failed for run %r attempt %d", on_error, run_id, attempt)
        raised = clip(f"{type(exc).__name__}: {_text(exc)}", REASON_MAX_CHARS)
        return Verdict.RETRY, f"on_error {on_error} raised {raised}; retrying"
    try:
        verdict = Verdict(str(answer).lower())
    except ValueError:
        log.warning(
            "on_error hook %r returned %r for run %r (not retry/fail/cancel): retrying",
            on_error,
            answer,
            run_id,
        )
        said = clip(repr(answer), REASON_MAX_CHARS)
        return Verdict.RETRY, f"on_error {on_error} returned {said}; retrying"
    return verdict, "" if verdict is Verdict.RETRY else f"on_error {on_error} said {verdict.value}"


def _text(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when even that raises."""
    try:
        return str(exc)
    except Exception as str_error:
        return f"<unprintable: str() raised {type(str_error).__name__}>"
