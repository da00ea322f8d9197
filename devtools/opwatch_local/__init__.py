"""Local tooling for opwatch: the whole pipeline on one machine, a demo, a fault soak.

Modules, by role (the functions' own code is the package :mod:`opwatch`)::

    cli                     the ``opwatch`` command: parser, local up, simulate, watch, tail
    demo                    ``opwatch demo``: six watches on a private stack, with its screen
    stack                   LocalStack: start, stop and restart the emulators, simulator and
                            functions; create their topics, subscriptions and queue
    stack_config            StackConfig and Ports: what the stack starts and how it names things
    procs                   child processes: own process group, log file, bounded readiness
                            wait, group stop, port checks
    pubsub                  Pub/Sub clients on the emulator, publish one message, pull some
    inbox                   Inbox: the one collector of notifications (demo, soak, bench, tests)
    simulator               the operations simulator: google.longrunning REST, faults, counted
                            GETs; its HTTP server and its control-API client
    tasks_emulator          run with the Tasks emulator's own venv (``__main__.py``): loopback
                            bind, task-name dedup, the task methods and quotas it lacks
    percentile              the one percentile every tool reports (nearest rank)
    soak                    the fault soak (package: plan, gate, report, run)

Wire formats (durations, RFC 3339 times) come from :mod:`opwatch.wire`, shared with the
functions. Everything binds to 127.0.0.1 and sends traffic only to loopback.
"""
