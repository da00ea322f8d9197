"""What to do after one look at an operation: the decision core of opwatch.

:func:`decide` takes the watch, its progress so far, the result of one fetch and the time, and
answers either :class:`Finish` (publish this terminal outcome) or :class:`CheckAgain` (look again
after this delay, with this progress). It does no I/O; the service carries the decision out.

How fetch results map to outcomes:

==============================  ====================================================
operation ``done`` + response   SUCCEEDED
operation ``done`` + error      FAILED, with the operation's own error
404                             "not created yet" during the grace window (unless the
                                operation was seen before), then NOT_FOUND
401 / 403                       PERMISSION_DENIED (403 for a rate limit is transient)
408, 429, 500, 502-504,         transient: look again later with backoff, honouring
timeouts, connection errors     Retry-After and RetryInfo
an API's own "busy" answers     transient too (:data:`BUSY_ANSWERS`: cloudaicompanion's two
                                409s, "unable to queue the operation" and "parent resource
                                not in ready state")
any other answer                FAILED, with the API's error
still pending at the timeout    TIMED_OUT (the last operation seen is included)
==============================  ====================================================
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from google.rpc import code_pb2

from opwatch import policy
from opwatch.contracts import WatchRequest
from opwatch.learned import Expectation
from opwatch.status import (
    Status,
    error_reasons,
    make_status,
    normalize_status,
    retry_after_delay,
    retry_info_delay,
)
from opwatch.wire import format_duration, parse_rfc3339

TRANSIENT_HTTP: Final = frozenset({408, 429, 500, 502, 503, 504})
RATE_LIMIT_REASONS: Final = frozenset(
    {"RATE_LIMIT_EXCEEDED", "rateLimitExceeded", "userRateLimitExceeded"}
)
# How much of the last failed check a check task carries (``opwatch status`` shows it).
MAX_LAST_ERROR_CHARS: Final = 300


@dataclass(frozen=True)
class BusyAnswer:
    """An error answer by which an API means "busy now, ask again", not "this failed".

    Attributes:
        http_status: the HTTP status it comes with.
        phrase: the text that tells it apart from other answers of that status.
        ignore_case: whether ``phrase`` is matched without regard to case.
    """

    http_status: int
    phrase: str
    ignore_case: bool

    def matches(self, result: FetchFailed) -> bool:
        if result.http_status != self.http_status:
            return False
        # The google provider searches the whole response body; the Status keeps the body's
        # message and details (or, for a body that is not JSON, its start in the message).
        text = f"{result.error.get('message', '')} {json.dumps(result.error.get('details'))}"
        if self.ignore_case:
            return self.phrase.lower() in text.lower()
        return self.phrase in text


# Per API. The google provider retries these two 409s of Gemini for Google Cloud, on the
# operation GET too (google/services/gemini/gemini_operation.go, QueryOp), with the match rules
# of google/transport/error_retry_predicates.go: IsRepositoryGroupQueueError looks for "unable to
# queue the operation" in the lower-cased body ("other enqueued operations" are in the way),
# IsCodeRepositoryIndexUnreadyError for "parent resource not in ready state" as written (the
# index is still being created). Either way the operation has not failed.
BUSY_ANSWERS: Final = MappingProxyType(
    {
        "cloudaicompanion.googleapis.com": (
            BusyAnswer(409, "unable to queue the operation", ignore_case=True),
            BusyAnswer(409, "parent resource not in ready state", ignore_case=False),
        ),
    }
)


class Outcome(enum.StrEnum):
    """How a watch ended, as the notification's ``outcome`` says."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    NOT_FOUND = "NOT_FOUND"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INVALID_REQUEST = "INVALID_REQUEST"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Progress:
    """How far a watch got; it travels in each check task, since nothing else remembers it.

    Attributes:
        started: when the watch started (timeouts count from here).
        polls: fetches made so far.
        transient_errors: consecutive transient fetch errors just before now.
        seen: whether the operation was ever found (a 404 after that means it is gone).
        parks: times the current step was set aside to wait out an outage (see the service);
            each re-run of a step is a task of its own, and the next step starts again at 0.
        last_error: what the last look met if it failed and the watch goes on (``HTTP 409:
            …``, at most :data:`MAX_LAST_ERROR_CHARS`), else None: what ``opwatch status``
            shows of a watch that keeps meeting errors.
    """

    started: datetime
    polls: int = 0
    transient_errors: int = 0
    seen: bool = False
    parks: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class Fetched:
    """The API answered with an Operation (JSON, exactly as returned)."""

    operation: dict[str, Any]


@dataclass(frozen=True)
class FetchFailed:
    """The fetch failed: an HTTP error (``http_status``) or no answer at all (``None``)."""

    http_status: int | None
    error: Status
    retry_after: str | None = None


FetchResult = Fetched | FetchFailed


@dataclass(frozen=True)
class Finish:
    """Publish the terminal notification."""

    outcome: Outcome
    operation: dict[str, Any] | None
    error: Status | None
    progress: Progress


@dataclass(frozen=True)
class CheckAgain:
    """Look again after ``delay`` seconds, carrying ``progress``."""

    delay: float
    progress: Progress
    operation: dict[str, Any] | None = None


Decision = Finish | CheckAgain


def decide(
    request: WatchRequest,
    progress: Progress,
    result: FetchResult,
    now: datetime,
    *,
    event_driven: bool = False,
    learned: Expectation | None = None,
) -> Decision:
    """Decide what follows one fetch; see the module docstring for the mapping.

    Args:
        request: the validated watch request.
        progress: the watch's progress before this fetch.
            The schedule follows the operation's own age when its metadata says its
            ``createTime``; the timeout counts from the watch's start.
        result: what the fetch returned.
        now: the time of the fetch (aware, UTC).
        event_driven: the operation's end is heard from the audit log, so polling is only the
            safety net (:data:`opwatch.policy.SAFETY_NET`).
        learned: when operations of its kind end, as learned (without ``expected_duration``,
            the looks gather where they do).

    Returns:
        :class:`Finish` or :class:`CheckAgain`. A CheckAgain never reaches past the watch's
        timeout: the last look happens at the deadline itself.
    """
    profile = policy.profile_for(request.api, request.polling, event_driven=event_driven)
    elapsed = max(0.0, (now - progress.started).total_seconds())
    progress = replace(progress, polls=progress.polls + 1)
    pending: dict[str, Any] | None = None
    server_hint: float | None = None
    last_error: Status | None = None

    if isinstance(result, Fetched):
        operation = result.operation
        if operation.get("done") is True:
            if operation.get("error"):
                return Finish(
                    Outcome.FAILED, operation, normalize_status(operation["error"]), progress
                )
            return Finish(Outcome.SUCCEEDED, operation, None, progress)
        pending = operation
        progress = replace(progress, transient_errors=0, seen=True, last_error=None)
    elif result.http_status == 404:
        if progress.seen or elapsed >= profile.not_found_grace:
            return Finish(Outcome.NOT_FOUND, None, result.error, progress)
        last_error = result.error
        progress = replace(progress, last_error=describe_failure(result))
    elif _is_transient(request.api, result):
        last_error = result.error
        progress = replace(
            progress,
            transient_errors=progress.transient_errors + 1,
            last_error=describe_failure(result),
        )
        hints = [retry_after_delay(result.retry_after, now), retry_info_delay(result.error)]
        server_hint = max((hint for hint in hints if hint is not None), default=None)
    elif result.http_status in (401, 403):
        return Finish(Outcome.PERMISSION_DENIED, None, result.error, progress)
    else:
        return Finish(Outcome.FAILED, None, result.error, progress)

    remaining = request.timeout - elapsed
    if remaining <= 0:
        return Finish(
            Outcome.TIMED_OUT, pending, _timed_out(request, progress, last_error), progress
        )
    delay = policy.next_delay(
        elapsed=_operation_age(pending, now, elapsed),
        profile=profile,
        rng=policy.rng_for(request.watch_id, progress.polls),
        expected_duration=request.expected_duration,
        window=policy.Window.learned(learned.low, learned.high) if learned else None,
        transient_errors=progress.transient_errors,
        server_hint=server_hint,
    )
    return CheckAgain(min(delay, remaining), progress, pending)


# A hinted watch is overdue past this many times its expected_duration.
OVERDUE_FACTOR: Final = 1.5


def overdue_after(request: WatchRequest, learned: Expectation | None) -> float | None:
    """Seconds of an operation's age past which it is overdue: 1.5 x the watch's own
    ``expected_duration``, else its kind's 95th percentile; None when nothing says."""
    if request.expected_duration is not None:
        return OVERDUE_FACTOR * request.expected_duration
    return learned.high if learned is not None else None


def operation_age(operation: dict[str, Any] | None, progress: Progress, now: datetime) -> float:
    """How long the operation has run (see :func:`_operation_age`)."""
    return _operation_age(operation, now, max(0.0, (now - progress.started).total_seconds()))


def _operation_age(operation: dict[str, Any] | None, now: datetime, elapsed: float) -> float:
    """How long the operation has run: from its ``metadata.createTime`` when it says one.

    A watch may start long after its operation (a late request, a discovery through the audit
    log): the schedule follows the operation's age, so a watch joining a 2-hour build does not
    poll as densely as one watching from the start. The timeout still counts from the watch's
    start, and a createTime in the future (clock skew) is not believed.
    """
    metadata = operation.get("metadata") if operation is not None else None
    created = parse_rfc3339(metadata.get("createTime")) if isinstance(metadata, dict) else None
    if created is None or created > now:
        return elapsed
    return max(elapsed, (now - created).total_seconds())


def describe_failure(result: FetchFailed) -> str:
    """One line for a failed fetch: ``HTTP 409: {message}``, or the message if nothing answered."""
    message = " ".join(str(result.error.get("message", "")).split())  # one line, for a table
    if result.http_status is not None and not message.startswith(f"HTTP {result.http_status}"):
        message = f"HTTP {result.http_status}: {message}"
    return message[:MAX_LAST_ERROR_CHARS]


def _is_transient(api: str, result: FetchFailed) -> bool:
    if result.http_status is None or result.http_status in TRANSIENT_HTTP:
        return True
    if any(answer.matches(result) for answer in BUSY_ANSWERS.get(api, ())):
        return True
    # Some APIs signal a rate limit with 403 instead of 429.
    return result.http_status == 403 and (
        result.error.get("code") == code_pb2.RESOURCE_EXHAUSTED
        or bool(error_reasons(result.error) & RATE_LIMIT_REASONS)
    )


def _timed_out(request: WatchRequest, progress: Progress, last_error: Status | None) -> Status:
    message = (
        f"the operation was not done after {format_duration(request.timeout)} "
        f"({progress.polls} checks)"
    )
    if last_error is not None:
        message += f"; the last check failed: {last_error.get('message', '')}"
    return make_status(code_pb2.DEADLINE_EXCEEDED, message)
