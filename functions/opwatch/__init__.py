"""opwatch: be told, once, when a Google Cloud long-running operation finishes.

The package is split the way the data flows::

    contracts     watch request in, validated (pure)
    policy        when to look again (pure, seeded)
    core          what to do with one fetch result (pure)
    notification  the terminal message subscribers receive (pure)
    service       one watch message or one check task, end to end, over injected ports
    adapters      the real ports: fetch (google-auth), schedule (Cloud Tasks), publish (Pub/Sub)
    settings      configuration read once from the environment
"""
