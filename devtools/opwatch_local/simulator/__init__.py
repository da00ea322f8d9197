"""An operations simulator: a small HTTP server that speaks google.longrunning REST.

opwatch polls ``GET https://{api}/{version}/{name}`` and expects an Operation. Locally the
functions get ``OPERATIONS_API_ENDPOINT=http://127.0.0.1:PORT`` instead, and this server answers:

``GET /{version}/{name}``
    The Operation JSON: ``name``, ``metadata`` (``@type``, ``createTime``, ``target``, ``verb``,
    ``statusMessage``, ``requestedCancellation``, ``apiVersion``, and ``endTime`` once finished),
    ``done``, and ``response`` or ``error`` once finished. Unknown names (and names created with
    ``appear_after`` before they appear) answer Google's error shape:
    ``{"error": {"code": 404, "message": ..., "status": "NOT_FOUND"}}``. An operation created
    with ``busy_for`` answers 409 for that long, as Gemini for Google Cloud does (:class:`Busy`).

``GET /{version}/{parent}/operations[?filter=…&pageSize=…&pageToken=…]``
    google.longrunning ListOperations (:meth:`Simulator.handle_list`): the visible operations
    directly under ``parent``, in creation order, a page at a time; ``filter`` may be
    ``done=false`` or ``done=true`` (a simulator made with ``list_filters=False`` refuses every
    filter). The paging rules are in :mod:`~opwatch_local.simulator.listing`.

Control API (JSON over HTTP, wrapped by :class:`SimulatorClient`):

``GET /_sim/health``             readiness probe, ``{"ok": true}``
``POST /_sim/operations``        create an operation (an :class:`OperationSpec` as JSON)
``POST /_sim/faults``            set faults for a name (see :meth:`Simulator.set_faults`)
``GET /_sim/stats?name=NAME``    polls of one name: count, times, statuses, auth presence
``GET /_sim/requests``           every operation GET seen, in order
``GET /_sim/lists``              every ListOperations call seen, in order
``POST /_sim/reset``             forget operations, faults and records
``GET /_sim/audit``              every audit entry written (delays of its copies; none: lost)

Audit entries (:mod:`opwatch_local.audit_log`): started with ``--audit-topic`` and
``--pubsub-host``, the simulator publishes an operation's first and last audit entry, the way a
Logging sink would, when it is created with ``audit`` options.

Fault kinds (:class:`FaultKind`): ``500``, ``503``, ``429-retry-after`` (``Retry-After`` header),
``429-retry-info`` (a ``google.rpc.RetryInfo`` detail), ``slow`` (sleep, bounded, then answer
normally), ``reset`` (TCP RST instead of an answer) and ``ok`` (no fault; a script placeholder).
Faults are given per operation name as a *script* (consumed one per GET, in order) and/or a
*probability* (applied after the script is used up, from a seeded RNG so runs repeat).

Every GET on an operation path is recorded -- including 404s and faulted ones -- with the time
from the injected clock and whether an ``Authorization`` header was present (its value is never
stored). That is what tests and benchmarks assert on: the number of polls and the gaps between them.

The modules, one job each:

- :mod:`~opwatch_local.simulator.spec`: what a caller asks for -- :class:`OperationSpec` (the one
  declaration of an operation's parameters, shared by the model, the server and the client),
  :class:`Fault`, :class:`Busy`.
- :mod:`~opwatch_local.simulator.model`: :class:`Simulator`, the state and the pure request logic
  on an injected clock. "What does this GET get?" is :meth:`Simulator.handle_get`, which returns
  a :class:`Reply` (:mod:`~opwatch_local.simulator.replies`); ListOperations paging is
  :mod:`~opwatch_local.simulator.listing`; what was seen is
  :mod:`~opwatch_local.simulator.records`.
- :mod:`~opwatch_local.simulator.server`: :class:`SimulatorServer`, which only carries replies out
  (sleeping or resetting when told; the sleep is injected too, so unit tests are deterministic).
- :mod:`~opwatch_local.simulator.client`: :class:`SimulatorClient`.
- :mod:`~opwatch_local.simulator.cli`: ``python -m opwatch_local.simulator --port 8090``.
"""

from opwatch_local.simulator.cli import main
from opwatch_local.simulator.client import SimulatorClient
from opwatch_local.simulator.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from opwatch_local.simulator.model import Simulator
from opwatch_local.simulator.records import GetRecord, ListRecord, OperationStats
from opwatch_local.simulator.replies import Reply
from opwatch_local.simulator.server import DEFAULT_PORT, SimulatorServer
from opwatch_local.simulator.spec import (
    MAX_SLOW_SECONDS,
    Busy,
    Fault,
    FaultKind,
    OperationSpec,
    SimulatorError,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PORT",
    "MAX_PAGE_SIZE",
    "MAX_SLOW_SECONDS",
    "Busy",
    "Fault",
    "FaultKind",
    "GetRecord",
    "ListRecord",
    "OperationSpec",
    "OperationStats",
    "Reply",
    "Simulator",
    "SimulatorClient",
    "SimulatorError",
    "SimulatorServer",
    "main",
]
