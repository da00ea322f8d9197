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
    logs          JSON log lines and their stable ``event`` vocabulary
    service       one watch message or one check task, end to end, over injected ports
    adapters      the real ports: fetch (google-auth), schedule (Cloud Tasks), publish (Pub/Sub)
    settings      configuration read once from the environment

``main.py`` beside the package wires them into the two Cloud Functions.
"""
