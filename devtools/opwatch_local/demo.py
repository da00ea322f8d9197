"""``opwatch demo``: six watches, every outcome, on a private local stack, shown as they happen.

:func:`run_demo` starts a :class:`~opwatch_local.stack.LocalStack` on free ports, creates the
operations of :data:`DEMO_WATCHES` in the simulator, publishes their watch requests, and prints a
timeline -- each GET the simulator saw, each notification its
:class:`~opwatch_local.inbox.Inbox` pulled -- then every notification (shortened) and a summary
table. Its screen (:class:`Screen`) redraws
one progress line in place on a terminal and prints a plain line now and then elsewhere.

The output helpers (:func:`describe_notification`, :func:`shorten`, :func:`compact_json`) are
pure, so the tests check them on fixed data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from opwatch.audit import discovered_watch_id
from opwatch.wire import parse_rfc3339
from opwatch_local.audit_log import DEFAULT_API, AuditOptions
from opwatch_local.inbox import Arrival, Inbox
from opwatch_local.procs import sigterm_as_exit
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig

__all__ = [
    "DEMO_WATCHES",
    "DemoWatch",
    "Screen",
    "compact_json",
    "describe_notification",
    "run_demo",
    "shorten",
]

DEMO_PARENT = "projects/opwatch-local/locations/us-central1"


@dataclass(frozen=True)
class DemoWatch:
    """One watch of the demo.

    Attributes:
        key: Short name; the watch id is ``demo-{key}``, the operation ``…/operations/demo-{key}``.
        expected: The outcome it must end with.
        story: What happens, in a few words.
        duration: Seconds the simulated operation runs; ``None``: no operation is created.
        request: Extra fields of the watch request.
        error: The operation's error once done.
        faults: Simulator faults for its first GETs.
        discovered: No watch request: the simulator writes the operation's audit entries, and
            opwatch discovers it (its watch id is derived from the operation).
    """

    key: str
    expected: str
    story: str
    duration: float | None = None
    request: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, Any] | None = None
    faults: tuple[Any, ...] = ()
    discovered: bool = False

    @property
    def watch_id(self) -> str:
        if self.discovered:
            return discovered_watch_id(DEFAULT_API, self.operation)
        return f"demo-{self.key}"

    @property
    def operation(self) -> str:
        return f"{DEMO_PARENT}/operations/demo-{self.key}"

    def watch_request(self) -> dict[str, Any]:
        request = {"operation": self.operation, "watch_id": self.watch_id}
        return request | {"labels": {"demo": self.key}} | dict(self.request)


DEMO_WATCHES: tuple[DemoWatch, ...] = (
    DemoWatch(
        "succeeds",
        "SUCCEEDED",
        "done after 8 s; expected_duration 8s",
        duration=8,
        request={"expected_duration": "8s"},
    ),
    DemoWatch(
        "fails",
        "FAILED",
        "fails after 6 s: 9 index build failed",
        duration=6,
        error={"code": 9, "message": "index build failed"},
    ),
    DemoWatch(
        "times-out", "TIMED_OUT", "runs 60 s, timeout 6s", duration=60, request={"timeout": "6s"}
    ),
    DemoWatch(
        "not-found",
        "NOT_FOUND",
        "never exists; not_found_grace 5s",
        request={"polling": {"not_found_grace": "5s"}},
    ),
    DemoWatch(
        "invalid",
        "INVALID_REQUEST",
        "api evil.example, not allowed",
        request={"api": "evil.example"},
    ),
    DemoWatch(
        "transient",
        "SUCCEEDED",
        "503, then 429 RetryInfo 2s; done after 4 s",
        duration=4,
        faults=("503", {"kind": "429-retry-info", "retry_after": 2}),
    ),
    DemoWatch(
        "discovered",
        "SUCCEEDED",
        "no watch request: audit entries 1 s late; done after 5 s",
        duration=5,
        discovered=True,
    ),
)


class Screen:
    """Event lines plus one progress line, redrawn in place only on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._progress_shown = False
        self._last_plain = 0.0

    def line(self, text: str = "") -> None:
        self._clear()
        print(text, file=self.out, flush=True)

    def progress(self, text: str) -> None:
        if self.tty:
            self.out.write(f"\r\033[K{text}")
            self.out.flush()
            self._progress_shown = True
        elif time.monotonic() - self._last_plain >= 5.0:  # a plain line now and then
            self._last_plain = time.monotonic()
            self.line(text)

    def _clear(self) -> None:
        if self._progress_shown:
            self.out.write("\r\033[K")
            self._progress_shown = False


def _seconds_between(start: object, end: object) -> float | None:
    began, ended = parse_rfc3339(start), parse_rfc3339(end)
    if began is None or ended is None:
        return None
    return (ended - began).total_seconds()


def describe_notification(data: Mapping[str, Any]) -> str:
    """``SUCCEEDED  polls 4  lag 0.7s``: outcome, polls, detection lag, error if any."""
    operation = data.get("operation") or {}
    end = (operation.get("metadata") or {}).get("endTime")
    lag = _seconds_between(end, data.get("observed_done"))
    text = f"{data.get('outcome', '?'):<15} polls {data.get('polls', '?')}"
    if lag is not None:
        text += f"  lag {lag:.1f}s after done"
    if error := data.get("error"):
        message = str(error.get("message", ""))
        text += f"  error {error.get('code')}: {message[:60]}{'…' if len(message) > 60 else ''}"
    return text


def shorten(value: Any, depth: int = 0) -> Any:
    """A notification made short for reading: long strings cut, ``request`` (an echo) dropped,
    objects below the second level summarised."""
    if isinstance(value, str):
        return _cut(value, 72)
    if isinstance(value, dict):
        if depth >= 2 and len(value) > 2:
            return f"{{… {len(value)} fields}}"
        return {k: shorten(v, depth + 1) for k, v in value.items() if k != "request"}
    if isinstance(value, list):
        return [shorten(v, depth + 1) for v in value]
    return value


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    head = width * 2 // 3
    return text[:head] + "…" + text[-(width - head - 1) :]


def compact_json(value: Any, indent: int = 0, used: int = 0, width: int = 100) -> str:
    """Indented JSON, except that an object or list that fits in ``width`` stays on one line.

    Args:
        indent: Indentation of the value's own nested lines.
        used: Columns already taken on the value's first line.
    """
    flat = json.dumps(value, ensure_ascii=False)
    if used + len(flat) <= width or not value or not isinstance(value, dict | list):
        return flat
    inner = " " * (indent + 2)
    if isinstance(value, dict):
        lines = [
            f"{inner}{json.dumps(k)}: "
            + compact_json(v, indent + 2, indent + 4 + len(json.dumps(k)), width)
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
    lines = [inner + compact_json(v, indent + 2, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(lines) + "\n" + " " * indent + "]"


def run_demo(environ: Mapping[str, str], timeout: float, out: TextIO) -> bool:
    """Run the demo on a stack of its own; True if every watch got its expected outcome.

    Args:
        environ: Base environment of the stack (``OPERATIONS_API_ENDPOINT`` is ignored: the
            demo shows the simulator).
        timeout: Seconds the whole demo may take.
        out: Where the screen goes.

    Raises:
        opwatch_local.procs.ProcessError, opwatch_local.stack_config.StackError: The stack
            could not start.
    """
    screen = Screen(out)
    began = time.monotonic()
    deadline = began + timeout
    environ = {k: v for k, v in environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    config = StackConfig(ports=Ports.free(), ready_timeout=min(30.0, timeout))
    stack = LocalStack(config, environ=environ)
    screen.line("opwatch demo: starting a private local stack (emulators, simulator, functions)…")
    with sigterm_as_exit(), stack:
        procs = ", ".join(f"{p.name} pid {p.pid} :{p.spec.ports[0]}" for p in stack.processes)
        screen.line(f"stack ready in {stack.timings['total']:.1f} s: {procs}")
        screen.line(f"logs in {stack.run_dir}")
        received, gets = _run_watches(stack, screen, deadline)
    ok = _report(screen, received, gets)
    screen.line(
        f"stack stopped in {max(stack.stop_times.values(), default=0.0):.1f} s; "
        f"demo took {time.monotonic() - began:.1f} s"
    )
    return ok


def _run_watches(
    stack: LocalStack, screen: Screen, deadline: float
) -> tuple[dict[str, Arrival], dict[str, int]]:
    """Create the operations, publish the watches, show events until every watch is answered or
    the deadline passes.

    Returns:
        The first notification per watch key, and the simulator's GET count per watch key.
    """
    sim = stack.client.simulator()
    by_watch_id = {w.watch_id: w for w in DEMO_WATCHES}
    by_operation = {w.operation: w for w in DEMO_WATCHES}
    t0 = time.time()  # the simulator records GETs on the same wall clock
    ends: dict[str, float] = {}
    for w in DEMO_WATCHES:
        if w.duration is not None:
            audit = AuditOptions(latency=1.0) if w.discovered else None
            sim.create_operation(w.operation, duration=w.duration, error=w.error, audit=audit)
            ends[w.operation] = t0 + w.duration
        if w.faults:
            sim.set_faults(w.operation, script=w.faults)
    screen.line()
    screen.line(f"{'watch':<10} {'expected':<15} story")
    for w in DEMO_WATCHES:
        if not w.discovered:
            stack.client.publish_watch_request(w.watch_request())
        screen.line(f"{w.key:<10} {w.expected:<15} {w.story}")
    screen.line()
    screen.line(f"{'time':>6}  {'event':<6}  {'watch':<10} what")

    seen = 0
    audit_seen = 0
    last_get: dict[str, float] = {}
    received: dict[str, Arrival] = {}
    inbox = Inbox(stack.client.pull_notifications, batch=len(DEMO_WATCHES))
    while len(received) < len(DEMO_WATCHES) and time.monotonic() < deadline:
        arrivals = inbox.poll(0.3)  # bounded: 0.3 s at most when nothing arrives
        records = sim.requests()
        for r in records[seen:]:  # new polls, in the order the simulator saw them
            name, at = r["name"], r["time"]
            what = f"GET {r['status']}"
            if r["fault"]:
                what += f" (injected {r['fault']})"
            elif r["status"] == 200:
                what += " done" if at >= ends.get(name, 0.0) else " pending"
            if name in last_get:
                what += f"  {at - last_get[name]:.1f}s after the previous"
            last_get[name] = at
            key = by_operation[name].key if name in by_operation else name
            screen.line(f"{at - t0:5.1f}s  poll    {key:<10} {what}")
        seen = len(records)
        deliveries = sim.audit_deliveries()
        for d in deliveries[audit_seen:]:  # audit entries the simulator sent, as a sink would
            key = by_operation[d["operation"]].key if d["operation"] in by_operation else "?"
            copies = ", ".join(f"+{delay:.1f}s" for delay in d["delays"]) or "lost"
            screen.line(f"{d['time'] - t0:5.1f}s  audit   {key:<10} {d['kind']} entry ({copies})")
        audit_seen = len(deliveries)
        for arrival in arrivals:
            watch = by_watch_id.get(arrival.watch_id)
            key = watch.key if watch else arrival.watch_id
            note = describe_notification(arrival.data)
            if key in received:
                note = "duplicate delivery, ignored: " + note
            elif watch is not None:
                received[key] = arrival
            screen.line(f"{arrival.at - t0:5.1f}s  notify  {key:<10} {note}")
        screen.progress(
            f"[{len(received)}/{len(DEMO_WATCHES)} done] waiting… {time.time() - t0:.1f}s"
        )
    screen.line()
    if len(received) < len(DEMO_WATCHES):
        missing = ", ".join(w.key for w in DEMO_WATCHES if w.key not in received)
        screen.line(
            f"TIMED OUT: no notification for {missing} before the demo's deadline "
            f"(--timeout); the functions' logs are in {stack.run_dir}"
        )
    gets = {w.key: sim.stats(w.operation).gets for w in DEMO_WATCHES}  # while it still runs
    return received, gets


def _report(screen: Screen, received: Mapping[str, Arrival], gets: Mapping[str, int]) -> bool:
    """Print each notification and the summary table; True if every outcome is as expected."""
    for w in DEMO_WATCHES:
        if w.key in received:
            arrival = received[w.key]
            screen.line(f"── {w.key}: the notification (shortened)")
            screen.line(compact_json(shorten(arrival.data)))
            attributes = " ".join(
                f"{k}={_cut(v, 48)}" for k, v in sorted(arrival.attributes.items())
            )
            screen.line(f"attributes: {attributes}")
    screen.line()
    screen.line(f"{'watch':<10} {'expected':<15} {'received':<15} {'polls':>5} {'GETs':>5}")
    correct = 0
    for w in DEMO_WATCHES:
        data = received[w.key].data if w.key in received else {}
        outcome = str(data.get("outcome", "(none)"))
        ok = outcome == w.expected
        correct += ok
        screen.line(
            f"{w.key:<10} {w.expected:<15} {outcome:<15} {data.get('polls', '-'):>5} "
            f"{gets.get(w.key, 0):>5}  {'✓' if ok else '✗'}"
        )
    screen.line(f"{correct}/{len(DEMO_WATCHES)} outcomes as expected")
    return correct == len(DEMO_WATCHES)
