"""opwatch: be told, once, when a Google Cloud long-running operation finishes.

The package is split the way the data flows::

    wire          durations and RFC 3339 times as they travel in JSON (pure)
    errors        the few exceptions opwatch raises on purpose
    contracts     watch request in, validated (pure)
    status        google.rpc.Status from whatever an API answered, and its retry hints (pure)
    policy        when to look again (pure, seeded)
    core          what to do with one fetch result (pure)
    notification  the terminal message subscribers receive (pure)
    checks        the body and name of a check task: a watch and its progress (pure)
    logs          JSON log lines and their stable ``event`` vocabulary; watchlog binds a watch
    envelope      what the functions are handed: a pushed message, a check task's headers
    ports         fetch, queue, publish and the clock, as the use cases see them
    steps         who takes a chain's next step (a look, a finish's claim, a cancel)
    handlers      each input handed to its use case:
      watching      one look, then the next look scheduled or the notification published
      recording     the ledger's side of a watch (records, learned durations)
      parking       a watch set aside on the queue's last attempts
      rejecting     the INVALID_REQUEST answer to bad input
      cancelling    a cancel request, and a cancel step carried out
      discovery     audit entries and the sweep
    registry      the queue as the registry of watches in flight (find, cancel, advance)
    adapters      the real ports: fetch (google-auth), schedule (Cloud Tasks), publish (Pub/Sub)
    settings      configuration read once from the environment, one small value per consumer

``main.py`` beside the package wires them into the two Cloud Functions.
"""
