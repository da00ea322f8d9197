"""The ``opwatch`` command: a local stack, simulated operations, watches, notifications, a demo.

::

    opwatch local up        start the whole pipeline here; print its variables; stay in front
    opwatch simulate        create a simulated operation          (OPWATCH_SIMULATOR_URL)
    opwatch watch NAME      publish a watch request               (OPWATCH_WATCH_TOPIC)
    opwatch tail            print notifications as JSON lines     (OPWATCH_RESULTS_SUBSCRIPTION)
    opwatch list            the watches, pending or finished      (OPWATCH_LEDGER_DATABASE)
    opwatch status ID       one watch, and its pending check      (OPWATCH_TASKS_QUEUE)
    opwatch cancel ID       stop a watch: one CANCELLED follows   (OPWATCH_TASKS_QUEUE)
    opwatch sweep           watch a parent's pending operations   (OPWATCH_TASKS_QUEUE)
    opwatch demo            six watches, every outcome, on a private stack of its own
                            (:mod:`opwatch_local.demo`)

Configuration comes from flags, else from the variables ``opwatch local up`` prints; the
environment is read once, in :func:`main`, and passed inward. ``watch`` and ``tail`` talk to the
Pub/Sub emulator when ``PUBSUB_EMULATOR_HOST`` is set and to real Pub/Sub (Application Default
Credentials) otherwise.

Exit codes: 0 done; 1 the command ran but the result is not what was asked for (too few
notifications, a demo watch with the wrong outcome, the demo's time ran out); 2 bad usage or
configuration; 130 interrupted.

Durations on the command line are human (``30s``, ``10m``, ``2d``); the watch request gets them in
the contract's form from :class:`opwatch_client.WatchRequest`.

One module per command group, each adding its own subparsers: :mod:`~opwatch_local.cli.local`
(``local up``), :mod:`~opwatch_local.cli.simulate`, :mod:`~opwatch_local.cli.watch` (``watch``,
``tail``), :mod:`~opwatch_local.cli.steer` (``list``, ``status``, ``cancel``),
:mod:`~opwatch_local.cli.sweep` and :mod:`~opwatch_local.cli.demo`; the argument values they share
are in :mod:`~opwatch_local.cli.args`, the parser and :func:`main` in
:mod:`~opwatch_local.cli.command`.
"""

from opwatch_local.cli.args import CliError, parse_error, parse_human_duration, parse_labels
from opwatch_local.cli.command import build_parser, main
from opwatch_local.cli.watch import build_watch_request

__all__ = [
    "CliError",
    "build_parser",
    "build_watch_request",
    "main",
    "parse_error",
    "parse_human_duration",
    "parse_labels",
]
