"""Launch gcloud-tasks-emulator 0.6.2 bound to loopback, with the task methods it lacks.

Run it with the emulator's own interpreter (it pins protobuf<5, so it lives in its own venv)::

    .venv-tasks-emulator/bin/python devtools/opwatch_local/tasks_emulator/__main__.py \\
        --port 9090 --queue projects/P/locations/L/queues/Q --max-retries 5

The package imports only what that venv has (the emulator, grpc, google-cloud-tasks); nothing
from opwatch. One module per piece: ``rules`` (what the real service documents: task names,
pages, HTTP to RPC codes, quotas; pure), ``bind`` (patch 1), ``state`` (the queue state of patches
4 and 6), ``servicer`` (the RPCs of patches 2, 4 and 5), ``__main__`` (the launcher, patch 3).

It changes the emulator's behaviour **at runtime only, never by editing its files**:

1. **Loopback bind.** The emulator hard-codes ``[::]:PORT`` (every interface). We wrap
   ``grpc.server(...)`` so that ``add_insecure_port`` binds ``127.0.0.1:PORT`` instead, with
   ``SO_REUSEPORT`` off (gRPC turns it on by default, which would let a second emulator silently
   share the port). A failed bind ends the process with exit code 3 and a clear message; the
   emulator would otherwise log a thread traceback and keep running without an API.
2. **Task-name dedup.** The real Cloud Tasks answers ``ALREADY_EXISTS`` to a CreateTask whose name
   was used before (for a while even after the task ran or was deleted). opwatch relies on that to
   keep one polling chain per watch when a request is delivered twice; the emulator accepts
   duplicates. We subclass the emulator's servicer (``server.Greeter``) and swap it in before
   ``main()`` builds the server, so a reused name answers ``ALREADY_EXISTS``. Names are remembered
   for the emulator's lifetime. Like the real service, a name must be
   ``{parent}/tasks/{ID}`` with ID of letters, digits, ``-`` or ``_`` (at most 500), else
   ``INVALID_ARGUMENT``.
3. **Bounded dispatch.** The emulator's ``urlopen`` has no timeout; one hung handler would block
   its queue forever. We set a socket default timeout (``--dispatch-timeout``, default 600 s, the
   real service's default dispatch deadline); a timed-out attempt counts as failed and is retried.

4. **Task methods as documented** (Cloud Tasks v2 RPC reference, ``CloudTasks`` service and the
   ``Task`` message). We swap the emulator's ``QueueState`` for a subclass that keeps every live
   task (scheduled, or dispatched and awaiting its response) in an index under one lock, and
   extend the servicer:

   - **GetTask** (emulator: UNIMPLEMENTED) returns a live task; ``NOT_FOUND`` for an unknown name
     and for a task that succeeded, permanently failed or was deleted.
   - **DeleteTask** (emulator: UNIMPLEMENTED) removes a scheduled or dispatched task, so it is not
     dispatched (again); ``NOT_FOUND`` as for GetTask. The name stays reserved (patch 2).
   - **ListTasks** (emulator: every queued task, bodies included, no paging; the task being
     dispatched was missing; an unknown queue answered ``UNKNOWN``): the live tasks of that queue
     in creation order, ``page_size`` 0 meaning and above 1000 coerced to 1000 (the documented
     maximum), an opaque ``page_token``/``next_page_token``, ``NOT_FOUND`` for an unknown queue,
     ``INVALID_ARGUMENT`` for a negative size or a foreign token.
   - **RunTask** (emulator: dispatched in the RPC thread, so the call waited for the target's
     answer, and a task already picked up by the queue thread made that thread die on
     ``NotFound``): dispatches now, on its own thread, even if the queue is PAUSED, the task is
     scheduled later or is already running; returns the task *after dispatch, before the target
     answers*. On success the task is gone; on failure its ``schedule_time`` becomes now (the
     emulator has no RetryConfig: its retry delay is its 0.1 s loop).
   - **Views.** Get, List, Run and Create honour ``response_view``: BASIC (the default) leaves out
     the request body, FULL includes it; ``Task.view`` says which was returned. (The View enum's
     reference names the body of an AppEngineHttpRequest; we also leave out an HttpRequest's.)
   - **Output fields.** ``create_time`` (truncated to the second), ``schedule_time`` (now if unset
     or past), ``dispatch_count`` (counted at dispatch, so it includes the attempt in flight),
     ``response_count`` (attempts answered with an HTTP status), ``first_attempt`` (only
     ``dispatch_time``) and ``last_attempt`` (``schedule_time``, ``dispatch_time``; once answered,
     ``response_time`` and ``response_status``, the HTTP status mapped to a ``google.rpc.Code`` as
     in ``code.proto``). A task in flight shows ``dispatch_count > response_count`` and a
     ``last_attempt`` without ``response_status``. A failed connection or a timeout is not a
     response: ``response_status`` UNAVAILABLE or DEADLINE_EXCEEDED, ``response_count`` unchanged.
   - Dispatch: one task at a time per queue thread, due when ``schedule_time`` has passed
     (patch 6), success = HTTP 2xx, dropped after ``--max-retries`` retries.

5. **Quotas as documented** (Cloud Tasks quotas page, https://cloud.google.com/tasks/docs/quotas):
   "List requests (ListTasks, ListQueues, ListLocations)" 600 a minute, and RunTask ("force
   run") 60 a minute, each answered ``RESOURCE_EXHAUSTED`` past its limit, in a sliding window
   (``--list-quota-per-minute``, ``--run-quota-per-minute``, ``--quota-window`` make them small
   for tests). A design that leans on those calls fails here first, as it would in production.
   GetQueue of an unknown queue answers ``NOT_FOUND`` (the emulator: ``UNKNOWN``).

6. **Dispatch by due time.** The emulator's queue thread went, every ~0.1 s, through every task
   it held, scheduled-later ones included, and logged ``[TASKS] Processing next task`` for
   each: with 10,000 tasks scheduled hours ahead it used ~47 % of a core doing nothing, a task
   created due now waited 0.37 s (median of 20) instead of 0.10 s, and it wrote 37 MB of log a
   minute at 1,000 tasks. The thread now takes only the tasks due, earliest first, from a heap
   the state keeps (``due_names``), and logs that line for those; dispatch is otherwise as it
   was: one task at a time per queue, every ~0.1 s, due when ``schedule_time`` has passed.

``--max-retries`` is passed through so a failing task is not retried every 0.1 s forever.

Not like the real service even so: no queue rate limits or RetryConfig backoff, no dispatch deadline
per task (patch 3 bounds every attempt alike), page tokens do not expire after 2 hours, names
stay reserved for the emulator's lifetime (not ~1 hour), and no OIDC ``Authorization`` header.
"""
