"""Fault soak: many watches on the real local stack while things break, and a strict tally.

``run_soak`` starts its own :class:`~opwatch_local.stack.LocalStack` (it kills processes, so it
must not share one), then:

1. **Plans** ``watches`` watches from a seed (``plan_watches``): operations that succeed or
   fail after 1-30 s, names that never exist (``NOT_FOUND`` after a short grace window), and
   operations that outlive their watch's timeout (``TIMED_OUT``). Each name gets one fault kind
   (``500``, ``503``, ``429`` with ``Retry-After``, ``429`` with ``RetryInfo``, ``slow`` -- longer
   than ``FETCH_TIMEOUT`` -- or a reset connection) at ``fault_rate`` of its GETs, so about that
   share of all GETs is faulted, evenly across the kinds.
2. **Publishes** them, with fast ``polling`` overrides so the run stays short.
3. **Kills** the check function's process group (SIGKILL, like a crash) once ``kill_at`` of the
   watches have finished, and starts it again: the Cloud Tasks emulator retries what failed.
4. **Takes the ledger's Firestore away** once ``firestore_outage_at`` of the watches have
   finished, beside the rest of the run: its emulator is killed with its data kept (as
   production's Firestore keeps it through an outage) and restarted on the same port after
   ``firestore_outage_seconds``. The watches go on meanwhile; their ledger writes fail, and a
   finish Firestore did not take is written by a record task 60 s later.
5. **Takes Pub/Sub away** once ``outage_at`` of the watches have finished and every watch request
   has been handled: the functions lose their connection to Pub/Sub, the emulator is stopped for
   ``outage_seconds`` while operations keep finishing, then started again on the same port with
   its topics and subscriptions recreated (it keeps no state). Checks that cannot publish fail,
   and Cloud Tasks delivers them again until the notification is out.
6. **Waits** (bounded) until every watch has a notification, listens ``settle_seconds`` more for
   duplicates, waits (bounded by ``ledger_wait``) until the ledger says every watch finished
   with the outcome its subscriber received, and tallies (``SoakReport``).

The functions reach Pub/Sub and Firestore through :class:`~opwatch_local.soak.gate.TcpGate` s
(its module says why).

Why ``tasks_max_retries`` is raised (``plan.TASKS_MAX_RETRIES``): the Tasks emulator retries a
failing task about every 0.1 s, and drops it after ``--max-retries`` (the stack's default is 5).
Real Cloud Tasks backs off (0.1 s doubling up to an hour, 100 attempts by default), so it outlasts
a few seconds of outage by far; the emulator with 5 retries would drop checks within half a second
and report as lost what the real service would have delivered. The functions are told the same
budget (``TASKS_MAX_ATTEMPTS``), as Terraform tells them the queue's in production.

``python -m bench.soak`` runs the full size and writes the report; ``tests/e2e/test_soak.py``
runs the CI size and asserts ``SoakReport.problems()`` is empty. The package:

    plan     the config and the seeded mix of watches (pure)
    gate     the TCP gate between the functions and Pub/Sub
    report   the tally and its problems (pure)
    run      the run itself, on a stack of its own; reads the logs by ``event``
"""

from opwatch_local.soak.gate import TcpGate
from opwatch_local.soak.plan import (
    FAULT_KINDS,
    TASKS_MAX_RETRIES,
    SoakConfig,
    WatchPlan,
    plan_watches,
)
from opwatch_local.soak.report import SoakReport
from opwatch_local.soak.run import run_soak

__all__ = [
    "FAULT_KINDS",
    "TASKS_MAX_RETRIES",
    "SoakConfig",
    "SoakReport",
    "TcpGate",
    "WatchPlan",
    "plan_watches",
    "run_soak",
]
