"""The body of a check task: a watch and its progress, since nothing else remembers them.

Cloud Tasks carries this JSON from one look to the next. It is opwatch's private format, but the
check function is reachable by anyone holding the invoker role, so it is read as untrusted input:
the embedded watch request is validated again against the current allowlists.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from opwatch.contracts import MAX_REASON_CHARS, WatchRequest, loads_strict
from opwatch.core import MAX_LAST_ERROR_CHARS, Progress
from opwatch.errors import InvalidCheckBody, Violation
from opwatch.kinds import MAX_KIND_CHARS
from opwatch.learned import Expectation
from opwatch.wire import parse_rfc3339, rfc3339

VERSION: Final = 3
# Bodies of earlier versions may still sit in a queue after an upgrade; their watch goes on
# rather than being dropped. Version 1 had no chain (it goes on under the chain id below) and no
# parks; versions 1 and 2 named a step by its poll count (no ``seq``), and a version 2 cancel
# counted the look it prevented among its polls.
LEGACY_VERSION: Final = 1
SEQLESS_VERSION: Final = 2
LEGACY_CHAIN: Final = "v1"
# "The maximum task size is 100KB" (CreateTask reference). The watch-request limits keep every
# body far below it (tests/core/test_sizes.py), leaving room for the name, URL and headers.
MAX_TASK_BYTES: Final = 100 * 1024
MAX_BODY_BYTES: Final = MAX_TASK_BYTES
_BODY_FIELDS: Final = frozenset({"opwatch_check", "chain", "seq", "request", "progress"})
# Optional in a version 3 body: the step the ledger last recorded (absent: none), the finish a
# ``Step.RECORD`` task writes, what was learned of the operation's kind (absent: nothing), and
# whether the watch's overdue message went out (absent: not yet).
_OPTIONAL_BODY_FIELDS: Final = frozenset({"step", "recorded", "finish", "learned", "warned"})
_PROGRESS_FIELDS: Final = frozenset({"started", "polls", "transient_errors", "seen", "parks"})
_BODY_FIELDS_BY_VERSION: Final = {
    LEGACY_VERSION: _BODY_FIELDS - {"chain", "seq"},
    SEQLESS_VERSION: _BODY_FIELDS - {"seq"},
    VERSION: _BODY_FIELDS,
}
_LEGACY_PROGRESS_FIELDS: Final = _PROGRESS_FIELDS - {"parks"}
# Written only while the watch meets errors, so other bodies stay as they were.
_OPTIONAL_PROGRESS_FIELDS: Final = frozenset({"last_error"})
_KEY_CHARS: Final = 16
# The chain of every watch started from an audit entry: its watch id is derived from the
# operation, so a duplicated entry, or a second discovery, meets the same task names.
DISCOVERED_CHAIN: Final = "discovered"
_CHAIN_RE: Final = re.compile(r"^[a-z0-9]{1,32}$")


@dataclass(frozen=True)
class CheckTask:
    """A re-check to schedule: Cloud Tasks calls the check function with ``body`` at ``when``.

    ``task_id`` is derived from the watch and how far it got, so a redelivered watch message or a
    retried check creates the same task, which Cloud Tasks refuses as ALREADY_EXISTS: one chain.
    """

    task_id: str
    body: bytes
    when: datetime


class Step(enum.StrEnum):
    """What a task of a chain does when it runs.

    Each step of a chain has one name, and Cloud Tasks lets only one task hold it: whoever
    creates step ``n + 1`` first (the next look, the claim of a finishing look, a cancel, or the
    audit fast path bringing the look forward) decides how the watch goes on. That is what makes
    a cancel race-free without any store.
    """

    LOOK = "look"  # look at the operation again (the usual check)
    FINISHED = "finished"  # held by a look that finished the watch: does nothing when it runs
    CANCEL = "cancel"  # the watch was cancelled: publish CANCELLED, without looking
    # The watch finished but the ledger did not take it: write its finish there, nothing else.
    RECORD = "record"


Attempt = tuple[int, int]
"""Which dispatch of a step: (times it was parked, Cloud Tasks retries of that task)."""


@dataclass(frozen=True)
class Finish:
    """How a watch ended, as a ``Step.RECORD`` task carries it to the ledger."""

    outcome: str
    finished: datetime
    message_id: str | None


@dataclass(frozen=True)
class CheckState:
    """A decoded check body: the watch request (still to validate), its progress and chain.

    ``seq`` is the step's place in its chain (it names the task); it runs ahead of the polls
    when a step was taken without a look (a look brought forward by the fast path).
    ``attempt`` is, for a finished watch's claim, which dispatch of the look wrote it: its
    parks and its Cloud Tasks retry count, in that order. A later dispatch of that look meeting
    it is the same look retrying its publish; one at the same attempt is a twin.
    """

    request: dict[str, Any]
    progress: Progress
    chain: str
    seq: int
    step: Step = Step.LOOK
    reason: str = ""
    attempt: Attempt | None = None
    recorded: int = 0
    finish: Finish | None = None
    learned: Expectation | None = None
    warned: bool = False

    @property
    def watch_id(self) -> str:
        return str(self.request["watch_id"])


@dataclass(frozen=True)
class TaskName:
    """What a check task's id says: ``{operation key}-{watch key}-{chain}-{seq}[p{parks}]``.

    - the operation key (``sha256(api/operation)``) finds every pending check of an operation,
      whoever asked to watch it, by a scan of task names;
    - the watch key (``sha256(watch_id)``) finds the pending checks of a watch id;
    - the chain tells apart watches that share both (one per Pub/Sub message), so reusing a
      watch id never meets the reserved name of an earlier watch;
    - ``seq`` (the step's place in the chain) makes each step's name distinct, and the same on
      a redelivery: Cloud Tasks refuses a second task of that name, so one chain stays one;
      ``p{parks}`` names a re-run of a step set aside during an outage, whose next step is
      again plain ``seq + 1``.

    Hashes lead, so names spread over Cloud Tasks' shards, and use only ``[a-z0-9-]``.
    """

    operation_key: str
    watch_key: str
    chain: str
    seq: int
    parks: int = 0

    def __str__(self) -> str:
        suffix = f"p{self.parks}" if self.parks else ""
        return f"{self.operation_key}-{self.watch_key}-{self.chain}-{self.seq}{suffix}"

    @classmethod
    def parse(cls, task_id: str) -> TaskName | None:
        """The parts of an opwatch task id (the last segment of a task name), or None."""
        match = _TASK_ID_RE.match(task_id.rsplit("/", 1)[-1])
        if match is None:
            return None
        operation, watch, chain, seq, parks = match.groups()
        return cls(operation, watch, chain, int(seq), int(parks or 0))


_TASK_ID_RE: Final = re.compile(
    rf"^([0-9a-f]{{{_KEY_CHARS}}})-([0-9a-f]{{{_KEY_CHARS}}})-([a-z0-9]{{1,32}})-"
    r"([1-9][0-9]{0,8})(?:p([1-9][0-9]{0,8}))?$"
)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_KEY_CHARS]


def operation_key(api: str, operation: str) -> str:
    """The key of an operation in task names: the same whoever watches it."""
    return _key(f"{api}/{operation}")


def watch_key(watch_id: str) -> str:
    """The key of a watch id in task names."""
    return _key(watch_id)


def chain_for_message(message_id: str) -> str:
    """The chain of a watch started by one Pub/Sub message: redeliveries share it."""
    return _key(f"message/{message_id}")[:12]


def encode(
    request: WatchRequest,
    progress: Progress,
    when: datetime,
    chain: str,
    *,
    seq: int | None = None,
    step: Step = Step.LOOK,
    reason: str = "",
    recorded: int = 0,
    finish: Finish | None = None,
    learned: Expectation | None = None,
    warned: bool = False,
) -> CheckTask:
    """The task that takes step ``seq`` of ``request``'s watch, at ``when``.

    Args:
        request: the watch.
        progress: how far the watch got.
        when: when Cloud Tasks should run it.
        chain: the watch's chain (see :class:`TaskName`).
        seq: the step's place in the chain, which names the task; by default the poll count,
            which it is in a chain that no step was taken in without a look.
        step: what the task does (a look, unless it holds a finished or cancelled watch's step).
        reason: why the watch was cancelled (``Step.CANCEL`` only).
        recorded: the step of this chain the ledger holds (0: none).
        finish: how the watch ended (``Step.RECORD`` only).
        learned: what was learned of the operation's kind when the watch started.
        warned: the watch's overdue message was published.
    """
    position = progress.polls if seq is None else seq
    return _encode(
        request.to_json(),
        progress,
        when,
        chain,
        position,
        step,
        reason,
        None,
        recorded,
        finish,
        learned,
        warned,
    )


def successor(
    state: CheckState,
    when: datetime,
    step: Step,
    reason: str = "",
    *,
    attempt: Attempt | None = None,
) -> CheckTask:
    """The task of the step after the one ``state`` was read from (same watch, same chain).

    Its name does not depend on how often ``state``'s step was parked: every re-run of step n
    leads to the same step n + 1, so whoever holds it (a cancel, a claim, a look brought
    forward) stops them all. The progress is carried over as it is: taking a step is no look.

    Args:
        state: the step taken from.
        when: when the new task should run.
        step: what it does.
        reason: why the watch was cancelled (``Step.CANCEL`` only).
        attempt: for a claim (``Step.FINISHED``), which dispatch of the look makes it.
    """
    progress = replace(state.progress, parks=0)
    return _encode(
        state.request,
        progress,
        when,
        state.chain,
        state.seq + 1,
        step,
        reason,
        attempt,
        state.recorded,
        None,
        state.learned,
        state.warned,
    )


def _encode(
    request: dict[str, Any],
    progress: Progress,
    when: datetime,
    chain: str,
    seq: int,
    step: Step,
    reason: str,
    attempt: Attempt | None,
    recorded: int,
    finish: Finish | None,
    learned: Expectation | None,
    warned: bool,
) -> CheckTask:
    body: dict[str, Any] = {
        "opwatch_check": VERSION,
        "chain": chain,
        "seq": seq,
        "request": request,
        "progress": {
            "started": rfc3339(progress.started),
            "polls": progress.polls,
            "transient_errors": progress.transient_errors,
            "seen": progress.seen,
            "parks": progress.parks,
        },
    }
    if progress.last_error is not None:
        body["progress"]["last_error"] = progress.last_error[:MAX_LAST_ERROR_CHARS]
    if step is not Step.LOOK:
        body["step"] = {"kind": step.value, "reason": reason[:MAX_REASON_CHARS]}
        if step is Step.FINISHED and attempt is not None:
            body["step"]["attempt"] = list(attempt)
    if recorded:
        body["recorded"] = recorded
    if learned is not None:
        body["learned"] = learned.to_json()
    if warned:
        body["warned"] = True
    if step is Step.RECORD and finish is not None:
        body["finish"] = {
            "outcome": finish.outcome,
            "finished": rfc3339(finish.finished),
            "message_id": finish.message_id,
        }
    # UTF-8 rather than \u escapes: an emoji costs 4 bytes, not 12, against the task size.
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    api, operation = str(request.get("api")), str(request.get("operation"))
    name = TaskName(
        operation_key(api, operation),
        watch_key(str(request["watch_id"])),
        chain,
        seq,
        progress.parks,
    )
    return CheckTask(task_id=str(name), body=data, when=when)


def decode(body: bytes) -> CheckState:
    """Read a check body written by :func:`encode`.

    Raises:
        InvalidCheckBody: the body is not one opwatch wrote (garbage, tampered, other version).
    """
    if len(body) > MAX_BODY_BYTES:
        raise _invalid(
            "", f"the body is {len(body)} bytes; opwatch writes at most {MAX_BODY_BYTES}"
        )
    try:
        data = loads_strict(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise _invalid(
            "", "the body is not JSON; only opwatch's own tasks may call this function"
        ) from None
    return read(data)


def read(data: object) -> CheckState:
    """Read a check body already decoded from JSON; see :func:`decode`."""
    # JSON true and 1.0 equal 1 in Python, but they are not what opwatch wrote.
    version = data.get("opwatch_check") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or type(version) is not int
        or version not in _BODY_FIELDS_BY_VERSION
    ):
        raise _invalid("opwatch_check", f"not an opwatch check body of version {VERSION}")
    legacy = version == LEGACY_VERSION
    body_fields = _BODY_FIELDS_BY_VERSION[version]
    if set(data) - _OPTIONAL_BODY_FIELDS != body_fields or (
        legacy and set(data) & _OPTIONAL_BODY_FIELDS
    ):
        raise _invalid("", f"an opwatch check body has exactly {', '.join(sorted(body_fields))}")
    step, reason, attempt = _step(data.get("step", {"kind": Step.LOOK.value, "reason": ""}))
    request, progress = data.get("request"), data.get("progress")
    chain = LEGACY_CHAIN if legacy else data.get("chain")
    if not isinstance(chain, str) or not _CHAIN_RE.match(chain):
        raise _invalid("chain", "must be 1-32 lowercase letters or digits")
    if not isinstance(request, dict) or not isinstance(request.get("watch_id"), str):
        raise _invalid("request", "missing, not an object, or without a watch_id")
    progress_fields = _LEGACY_PROGRESS_FIELDS if legacy else _PROGRESS_FIELDS
    if (
        not isinstance(progress, dict)
        or set(progress) - _OPTIONAL_PROGRESS_FIELDS != progress_fields
    ):
        fields = ", ".join(sorted(progress_fields))
        raise _invalid("progress", f"must be an object with exactly {fields} (last_error optional)")
    started = progress.get("started")
    polls, errors, seen = (
        progress.get("polls"),
        progress.get("transient_errors"),
        progress.get("seen"),
    )
    try:
        started_at = datetime.fromisoformat(started) if isinstance(started, str) else None
    except ValueError:
        started_at = None
    if started_at is None or started_at.tzinfo is None:
        raise _invalid("progress.started", "missing or not an RFC 3339 time with a zone")
    if not isinstance(polls, int) or not _count(polls) or polls < 1:
        raise _invalid("progress.polls", "must be a positive integer")
    if not isinstance(errors, int) or not _count(errors):
        raise _invalid("progress.transient_errors", "must be a non-negative integer")
    if not isinstance(seen, bool):
        raise _invalid("progress.seen", "must be a boolean")
    parks = progress.get("parks", 0)
    if not isinstance(parks, int) or not _count(parks):
        raise _invalid("progress.parks", "must be a non-negative integer")
    seq = data.get("seq", polls)
    if not isinstance(seq, int) or not _count(seq) or seq < polls:
        raise _invalid("seq", "must be an integer no smaller than progress.polls")
    if version == SEQLESS_VERSION and step is Step.CANCEL:
        polls -= 1  # a version 2 cancel counted the look it prevented
    last_error = progress.get("last_error")
    if last_error is not None and (
        not isinstance(last_error, str) or len(last_error) > MAX_LAST_ERROR_CHARS
    ):
        raise _invalid(
            "progress.last_error", f"must be a string of {MAX_LAST_ERROR_CHARS} characters at most"
        )
    recorded = data.get("recorded", 0)
    if not _count(recorded) or recorded > seq:
        raise _invalid("recorded", "must be an integer no larger than seq")
    finish = _finish(data.get("finish")) if step is Step.RECORD else None
    if (step is Step.RECORD and finish is None) or (step is not Step.RECORD and "finish" in data):
        raise _invalid(
            "finish",
            "a record step, and only one, carries {outcome, finished: RFC 3339, message_id}",
        )
    learned = _learned(data["learned"]) if "learned" in data else None
    warned = data.get("warned", False)
    if warned is not True and "warned" in data:
        raise _invalid("warned", "is true when present")
    progress_read = Progress(started_at.astimezone(UTC), polls, errors, seen, parks, last_error)
    return CheckState(
        request,
        progress_read,
        chain,
        seq,
        step,
        reason,
        attempt,
        recorded,
        finish,
        learned,
        warned is True,
    )


def _learned(value: object) -> Expectation:
    fields = {"kind", "samples", "low", "median", "high"}
    if isinstance(value, dict) and set(value) == fields:
        kind, samples = value["kind"], value["samples"]
        numbers = [value[k] for k in ("low", "median", "high")]
        if (
            isinstance(kind, str)
            and len(kind) <= MAX_KIND_CHARS
            and _count(samples)
            and all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers)
        ):
            low, median, high = (float(n) for n in numbers)
            if 0 < low <= median <= high:
                return Expectation(kind, samples, low, median, high)
    raise _invalid(
        "learned", "must be {kind, samples, low, median, high} with 0 < low <= median <= high"
    )


def _finish(value: object) -> Finish | None:
    if not isinstance(value, dict) or set(value) != {"outcome", "finished", "message_id"}:
        return None
    outcome, message_id = value["outcome"], value["message_id"]
    finished = parse_rfc3339(value["finished"])
    if not isinstance(outcome, str) or not outcome or finished is None:
        return None
    if message_id is not None and not isinstance(message_id, str):
        return None
    return Finish(outcome, finished, message_id)


def _step(value: object) -> tuple[Step, str, Attempt | None]:
    kind = value.get("kind") if isinstance(value, dict) else None
    reason = value.get("reason") if isinstance(value, dict) else None
    attempt = value.get("attempt") if isinstance(value, dict) else None
    keys = {"kind", "reason", "attempt"} if kind == Step.FINISHED.value else {"kind", "reason"}
    if (
        not isinstance(value, dict)
        or not {"kind", "reason"} <= set(value) <= keys
        or kind not in set(Step)
        or not isinstance(reason, str)
        or len(reason) > MAX_REASON_CHARS
        or not (attempt is None or _attempt(attempt))
    ):
        kinds = ", ".join(step.value for step in Step)
        raise _invalid(
            "step", f"must be {{kind: {kinds}; reason: a string; attempt: [parks, retries]}}"
        )
    return Step(kind), reason, (attempt[0], attempt[1]) if attempt is not None else None


def _attempt(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_count(v) for v in value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _invalid(field: str, description: str) -> InvalidCheckBody:
    return InvalidCheckBody([Violation(field, description)])
