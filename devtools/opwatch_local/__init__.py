"""Local-stack building blocks for opwatch: the whole pipeline on one machine.

Modules:

- :mod:`opwatch_local.simulator` -- an HTTP server speaking google.longrunning REST, with a
  control API to create operations, inject faults and count polls (``SimulatorServer``,
  ``SimulatorClient``).
- :mod:`opwatch_local.procs` -- supervision of child processes: own process group, log file,
  bounded readiness wait, group stop (``Supervisor``, ``ProcessSpec``, ``http_ready``,
  ``tcp_ready``).
- :mod:`opwatch_local.tasks_emulator_launcher` -- run with the Tasks emulator's own venv; binds
  the emulator to 127.0.0.1 and adds task-name dedup (ALREADY_EXISTS) like the real service.
- :mod:`opwatch_local.stack` -- ``LocalStack``: Pub/Sub emulator, Tasks emulator, simulator and
  the two functions as processes, plus the topics, subscriptions and queue they need.

Everything binds to 127.0.0.1 and sends traffic only to loopback.
"""
